"""What the commands show: summaries of reports as named tables (:mod:`.tables`) rendered as
text, Markdown or JSON; plots (:mod:`.plot`, :mod:`.page`) and Perfetto traces
(:mod:`.perfetto`) of a report directory (:mod:`.report`)."""
