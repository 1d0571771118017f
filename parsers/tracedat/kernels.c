/*
 * Compiled loops of the trace.dat decoder, built as a shared library when the package is
 * installed (pyproject.toml, ext-modules) and called through ctypes by kernels.py, which
 * checks every array it passes (type, C order, size). No Python object is touched here: the
 * calls run without the GIL, side by side on the render threads.
 *
 * - fr_walk_pages: the ring-buffer page walk (record format: ring.py);
 * - fr_check_records: records checked before they are rendered (records.py);
 * - fr_unknown_types, fr_learn, fr_rehash, fr_render_records: records turned into event-table
 *   columns, driven by the per-type tables of layout.py (table.py);
 * - fr_gather_records: payloads copied out of pages that may go.
 *
 * Numbers in the file are little-endian (trace-cmd writes the host's order; the container
 * reader refuses big-endian files); they are read a byte at a time, so any host reads them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;
typedef int32_t i32;
typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;

/* ------------------------------------------------------------------ ring-buffer pages */

enum { PADDING = 29, TIME_EXTEND = 30, TIME_STAMP = 31 };
#define COMMIT_MASK ((UINT64_C(1) << 27) - 1)
#define MISSED_EVENTS (UINT64_C(1) << 31)
#define MISSED_STORED (UINT64_C(1) << 30)
#define TS_MSB (UINT64_C(0xF8) << 56)
#define TOP (UINT64_C(1) << 63)
/* damage codes of a page (0: sound), as kernels.py names them */
enum { BAD_COMMIT = 1, BAD_RECORD, PAST_COMMIT, BAD_MISSED, BAD_TIME };

static inline u32 rd32(const u8 *b, i64 i)
{
    return (u32)b[i] | ((u32)b[i + 1] << 8) | ((u32)b[i + 2] << 16) | ((u32)b[i + 3] << 24);
}

static inline u64 rd64(const u8 *b, i64 i)
{
    return (u64)rd32(b, i) | ((u64)rd32(b, i + 4) << 32);
}

static inline u64 rd_word(const u8 *b, i64 i, i64 size)
{
    return size == 8 ? rd64(b, i) : (u64)rd32(b, i);
}

/* The data records of one page's `size` committed bytes at `data` (page time `t`), written
 * from place `n` on; the number of records after it. A broken rule sets *code and *at (the
 * record's byte offset). */
static i64 walk_page(const u8 *pages, i64 size, i64 data, u64 t, u64 *ts_out, i64 *off_out,
                     i64 *len_out, i64 n, i64 *code, i64 *at)
{
    i64 cur = 0;
    while (cur < size) {
        i64 pos = data + cur, nxt;
        if (cur + 4 > size)
            goto bad_record;
        u32 hdr = rd32(pages, pos);
        u32 type_len = hdr & 31;
        u64 delta = hdr >> 5;
        i64 word = 0;
        if (type_len >= PADDING || type_len == 0) {
            if (type_len == PADDING && delta == 0)
                return n; /* the rest of the page is padding */
            if (cur + 8 > size)
                goto bad_record;
            word = (i64)rd32(pages, pos + 4);
        }
        if (type_len == PADDING) {
            t += delta;
            nxt = cur + 4 + word;
        } else if (type_len == TIME_EXTEND) {
            t += ((u64)word << 27) + delta;
            nxt = cur + 8;
        } else if (type_len == TIME_STAMP) {
            t = (((u64)word << 27) + delta) | (t & TS_MSB);
            nxt = cur + 8;
        } else {
            i64 length, payload;
            t += delta;
            if (type_len == 0) {
                if (word < 8)
                    goto bad_record;
                length = ((word - 4) + 3) & ~(i64)3;
                payload = pos + 8;
                nxt = cur + 8 + length;
            } else {
                length = (i64)type_len * 4;
                payload = pos + 4;
                nxt = cur + 4 + length;
            }
            if (nxt > size) {
                *code = PAST_COMMIT, *at = pos;
                return n;
            }
            if (t & TOP) {
                *code = BAD_TIME, *at = pos;
                return n;
            }
            ts_out[n] = t;
            off_out[n] = payload;
            len_out[n] = length;
            n++;
        }
        if (nxt > size) {
            *code = PAST_COMMIT, *at = pos;
            return n;
        }
        cur = nxt;
        continue;
bad_record:
        *code = BAD_RECORD, *at = pos;
        return n;
    }
    return n;
}

/* All data records of one CPU's sound pages (`nbytes` of whole pages) in ring order; per page
 * its lost count (-1 unknown, 0 none), first record, damage code and the damage's offset.
 * Returns the number of records. The page header's fields lie in the page (the caller
 * checks); the outputs have room for nbytes / 8 + 1 records and nbytes / page_size pages. */
i64 fr_walk_pages(const u8 *pages, i64 nbytes, i64 page_size, i64 ts_off, i64 c_off,
                  i64 c_size, i64 data_off, u64 *ts_out, i64 *off_out, i64 *len_out, i64 *lost,
                  i64 *first, i64 *damage, i64 *where)
{
    i64 npages = nbytes / page_size, room = page_size - data_off, n = 0;
    for (i64 p = 0; p < npages; p++) {
        i64 base = p * page_size, data = base + data_off, code = 0, at = base;
        u64 t = rd64(pages, base + ts_off);
        u64 commit = rd_word(pages, base + c_off, c_size);
        i64 size = (i64)(commit & COMMIT_MASK);
        first[p] = n;
        lost[p] = 0;
        damage[p] = 0;
        where[p] = 0;
        if (size > room) {
            code = BAD_COMMIT;
        } else if (commit & MISSED_EVENTS) {
            lost[p] = -1;
            if (commit & MISSED_STORED) {
                if (size + c_size > room) {
                    code = BAD_MISSED, at = data + size;
                } else {
                    u64 count = rd_word(pages, data + size, c_size);
                    if (count & TOP)
                        code = BAD_MISSED, at = data + size;
                    else
                        lost[p] = (i64)count;
                }
            }
        }
        if (code == 0)
            n = walk_page(pages, size, data, t, ts_out, off_out, len_out, n, &code, &at);
        if (code) {
            n = first[p]; /* a damaged page gives no record */
            lost[p] = -1;
            damage[p] = code;
            where[p] = at;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ record checks */

#define COMMON_BYTES 8 /* include/linux/trace_events.h struct trace_entry */
#define UNKNOWN (-1)
enum { SHORT = 1, BAD_PID, NEW_TYPE_CHECK, SHORTER_THAN_FORMAT };

static inline i64 type_of(const u8 *data, i64 p)
{
    return (i64)data[p] | ((i64)data[p + 1] << 8);
}

/* What is wrong with the first record from `start` on (0: none), its index in *index. */
i64 fr_check_records(const u8 *data, const i64 *payload, const i64 *length, i64 n, i64 start,
                     const i64 *min_length, i64 pid_max, i64 *index)
{
    for (i64 i = start; i < n; i++) {
        i64 p = payload[i];
        *index = i;
        if (length[i] < COMMON_BYTES)
            return SHORT;
        i64 pid = (i64)(i32)rd32(data, p + 4);
        if (pid < 0 || pid > pid_max)
            return BAD_PID;
        i64 need = min_length[type_of(data, p)];
        if (need == UNKNOWN)
            return NEW_TYPE_CHECK;
        if (length[i] < need)
            return SHORTER_THAN_FORMAT;
    }
    *index = n;
    return 0;
}

/* ------------------------------------------------------------------ rendering */

#define EMPTY (-1) /* an unused place of the string value table */
#define TYPE_IDS (1 << 16)
enum { LEARNT = 0, NEW_TYPE = 1, TABLE_FULL = 2, NO_MEMORY = 3 };

/* The `size`-byte little-endian integer at `p` as int64: sign-extended when `sign`, 8 bytes
 * as their bits, any other size its first byte. */
static inline i64 rd_int(const u8 *data, i64 p, i64 size, i64 sign)
{
    u64 u;
    if (size == 8)
        return (i64)rd64(data, p);
    if (size == 4)
        u = rd32(data, p);
    else if (size == 2)
        u = (u64)data[p] | ((u64)data[p + 1] << 8);
    else
        u = data[p];
    u64 bits = 8 * (u64)size;
    if (sign && bits > 0 && bits < 64 && (u >> (bits - 1)))
        return (i64)(u - (UINT64_C(1) << bits));
    return (i64)u;
}

/* Where (op, value) is, or the empty place where it would go, in the open-addressed string
 * value table of mask + 1 places. */
static inline i64 place(const i64 *keys, const i64 *ops, i64 mask, i64 op, i64 value)
{
    u64 h = ((u64)value * UINT64_C(0x9E3779B97F4A7C15)) ^ ((u64)op * UINT64_C(0xC2B2AE3D27D4EB4F));
    i64 i = (i64)((h >> 20) & (u64)mask);
    while (ops[i] != EMPTY && !(ops[i] == op && keys[i] == value))
        i = (i + 1) & mask;
    return i;
}

/* The distinct event type ids of the records that have no slot yet, in `out` (room for
 * TYPE_IDS); their number, or -1 without memory. */
i64 fr_unknown_types(const u8 *data, const i64 *payload, i64 n, const i32 *slot_of_type,
                     i64 *out)
{
    u8 *seen = calloc(TYPE_IDS, 1);
    i64 count = 0;
    if (!seen)
        return -1;
    for (i64 i = 0; i < n; i++) {
        i64 t = type_of(data, payload[i]);
        if (slot_of_type[t] < 0 && !seen[t]) {
            seen[t] = 1;
            out[count++] = t;
        }
    }
    free(seen);
    return count;
}

/* One pass over the records for what the renderer does not know yet (see kernels.learn).
 * New places go to `places` (room for `limit`), pids without a command name to `pids` (room
 * for n; repeated ones are dropped by the caller). Returns the status. */
i64 fr_learn(const u8 *data, const i64 *payload, i64 n, const i32 *slot_of_type,
             const i64 *text_width, const i64 *pool_of_pid, i64 npool, const i64 *str_start,
             const i64 *str_ops, i64 nops, i64 *keys, i64 *ops, i64 *codes, i64 table_size,
             i64 limit, const i64 *cuts, i64 npieces, i64 *str_rows, i64 ncols,
             i64 *text_bytes, i64 *places, i64 *nplaces, i64 *pids, i64 *npids)
{
    i64 used = 0, status = LEARNT, last_pid = -1, piece = 0, mask = table_size - 1;
    i64 *last = calloc(nops > 0 ? nops : 1, sizeof(i64)); /* each string op's last value */
    u8 *known = calloc(nops > 0 ? nops : 1, 1);
    *nplaces = 0;
    *npids = 0;
    if (!last || !known) {
        free(last);
        free(known);
        return NO_MEMORY;
    }
    for (i64 i = 0; i < table_size; i++)
        used += ops[i] != EMPTY;
    memset(str_rows, 0, sizeof(i64) * npieces * ncols);
    memset(text_bytes, 0, sizeof(i64) * npieces);
    for (i64 i = 0; i < n; i++) {
        while (i >= cuts[piece + 1])
            piece++;
        i64 p = payload[i];
        i64 s = slot_of_type[type_of(data, p)];
        if (s < 0) {
            status = NEW_TYPE;
            break;
        }
        i64 pid = rd_int(data, p + 4, 4, 1);
        if (pid != last_pid) {
            if (pid >= npool || pool_of_pid[pid] < 0)
                pids[(*npids)++] = pid;
            last_pid = pid;
        }
        for (i64 o = str_start[s]; o < str_start[s + 1]; o++) {
            const i64 *op = str_ops + 4 * o;
            str_rows[piece * ncols + op[3]] += 1;
            i64 v = rd_int(data, p + op[0], op[1], op[2]);
            if (known[o] && v == last[o]) /* values repeat: skip the table */
                continue;
            known[o] = 1;
            last[o] = v;
            i64 at = place(keys, ops, mask, o, v);
            if (ops[at] == EMPTY) {
                if (used >= limit) {
                    *npids = 0;
                    free(last);
                    free(known);
                    return TABLE_FULL;
                }
                ops[at] = o;
                keys[at] = v;
                codes[at] = -1;
                used++;
                places[(*nplaces)++] = at;
            }
        }
        text_bytes[piece] += text_width[s];
    }
    free(last);
    free(known);
    return status;
}

/* The string value table moved into the new one of `new_size` places (a power of two; ops
 * EMPTY everywhere). */
void fr_rehash(const i64 *keys, const i64 *ops, const i64 *codes, i64 size, i64 *nk, i64 *no,
               i64 *nc, i64 new_size)
{
    for (i64 i = 0; i < size; i++) {
        if (ops[i] != EMPTY) {
            i64 at = place(nk, no, new_size - 1, ops[i], keys[i]);
            nk[at] = keys[i];
            no[at] = ops[i];
            nc[at] = codes[i];
        }
    }
}

static const char HEX[] = "0123456789abcdef";

/* `digits` hex digits of `v`, most significant first. */
static inline i64 put_hex(u8 *text, i64 at, u64 v, i64 digits)
{
    for (i64 d = 0; d < digits; d++)
        text[at + d] = (u8)HEX[(v >> (4 * (digits - 1 - d))) & 15];
    return at + digits;
}

static inline i64 put(const u8 *src, i64 start, i64 stop, u8 *out, i64 at)
{
    memcpy(out + at, src + start, (size_t)(stop - start));
    return at + stop - start;
}

/* Every column of every record: pid, event and comm strings, typed int values and strings
 * with their validity bits, the `fields` text (see kernels.render_records). Returns 0, or -1
 * without memory. */
i64 fr_render_records(const u8 *data, const i64 *payload, i64 n, const i32 *slot_of_type,
                      const i64 *slot_event, const i64 *pool_of_pid, const i64 *pool_offsets,
                      const u8 *pool_bytes, const i64 *int_start, const i64 *int_ops,
                      const i64 *str_start, const i64 *str_ops, i64 nops, const i64 *keys,
                      const i64 *ops, const i64 *codes, i64 table_size, const i64 *hex_start,
                      const i64 *hex_fields, const u8 *hex_labels, i32 *pid_out, i64 *ints,
                      u8 *int_valid, i64 nbytes, const i64 *str_used, i64 nused,
                      i32 *str_ends, const i64 *str_base, i64 nstrcols, u8 *str_bytes,
                      u8 *str_valid, i32 *event_ends, u8 *event_bytes, i32 *comm_ends,
                      u8 *comm_bytes, void *text_ends, i64 wide_text, u8 *text)
{
    i64 mask = table_size - 1, ev_at = 0, comm_at = 0, at = 0;
    i64 *str_at = calloc(nstrcols > 0 ? nstrcols : 1, sizeof(i64));
    i64 *seen_value = calloc(nops > 0 ? nops : 1, sizeof(i64)); /* each string op's last */
    i64 *seen_code = malloc(sizeof(i64) * (nops > 0 ? nops : 1)); /* its code (-1: none yet) */
    i32 *ends32 = text_ends;
    i64 *ends64 = text_ends;
    if (!str_at || !seen_value || !seen_code) {
        free(str_at);
        free(seen_value);
        free(seen_code);
        return -1;
    }
    for (i64 o = 0; o < nops; o++)
        seen_code[o] = -1;
    for (i64 u = 0; u < nused; u++)
        str_ends[u * (n + 1)] = 0;
    event_ends[0] = 0;
    comm_ends[0] = 0;
    if (wide_text)
        ends64[0] = 0;
    else
        ends32[0] = 0;
    for (i64 i = 0; i < n; i++) {
        i64 p = payload[i];
        i64 s = slot_of_type[type_of(data, p)];
        i64 byte = i >> 3;
        u8 bit = (u8)(1u << (i & 7));
        i64 who = rd_int(data, p + 4, 4, 1);
        pid_out[i] = (i32)who;
        i64 code = slot_event[s];
        ev_at = put(pool_bytes, pool_offsets[code], pool_offsets[code + 1], event_bytes, ev_at);
        event_ends[i + 1] = (i32)ev_at;
        code = pool_of_pid[who];
        comm_at = put(pool_bytes, pool_offsets[code], pool_offsets[code + 1], comm_bytes, comm_at);
        comm_ends[i + 1] = (i32)comm_at;
        for (i64 o = int_start[s]; o < int_start[s + 1]; o++) {
            const i64 *op = int_ops + 8 * o; /* offset size signed width cast_signed not1
                                                buffer column */
            i64 v = rd_int(data, p + op[0], op[1], op[2]);
            i64 width = op[3];
            if (op[5] && v == -1) /* "f != -1UL ? f : 0" */
                v = 0;
            if (width > 0 && width < 64) { /* printf's cast to the conversion's width */
                u64 w = (u64)v & ((UINT64_C(1) << width) - 1);
                if (op[4] && w >= (UINT64_C(1) << (width - 1)))
                    w -= UINT64_C(1) << width;
                v = (i64)w;
            }
            ints[op[6] * n + i] = v;
            int_valid[op[7] * nbytes + byte] |= bit;
        }
        for (i64 o = str_start[s]; o < str_start[s + 1]; o++) {
            const i64 *op = str_ops + 4 * o; /* offset size signed column */
            i64 v = rd_int(data, p + op[0], op[1], op[2]);
            i64 c = op[3];
            if (seen_code[o] < 0 || v != seen_value[o]) { /* values repeat: skip the table */
                seen_value[o] = v;
                seen_code[o] = codes[place(keys, ops, mask, o, v)];
            }
            code = seen_code[o];
            str_at[c] = put(pool_bytes, pool_offsets[code], pool_offsets[code + 1], str_bytes,
                            str_base[c] + str_at[c]) -
                        str_base[c];
            str_valid[c * nbytes + byte] |= bit;
        }
        i64 j0 = hex_start[s];
        i64 label = j0 > 0 ? hex_fields[4 * (j0 - 1)] : 0;
        for (i64 j = j0; j < hex_start[s + 1]; j++) {
            const i64 *hf = hex_fields + 4 * j; /* label end, offset, size, is a number */
            at = put(hex_labels, label, hf[0], text, at);
            label = hf[0];
            i64 base = p + hf[1], size = hf[2];
            if (hf[3] && size <= 8 && (size & (size - 1)) == 0) {
                /* a number: most significant digit first */
                at = put_hex(text, at, (u64)rd_int(data, base, size, 0), 2 * size);
            } else { /* bytes in order; a number of another size from its last byte */
                i64 last = hf[3] ? size - 1 : 0;
                for (i64 k = 0; k < size; k++) {
                    u8 b = data[base + (last ? last - k : k)];
                    text[at] = (u8)HEX[b >> 4];
                    text[at + 1] = (u8)HEX[b & 15];
                    at += 2;
                }
            }
        }
        if (wide_text)
            ends64[i + 1] = at;
        else
            ends32[i + 1] = (i32)at;
        for (i64 u = 0; u < nused; u++)
            str_ends[u * (n + 1) + i + 1] = (i32)str_at[str_used[u]];
    }
    free(str_at);
    free(seen_value);
    free(seen_code);
    return 0;
}

/* The payloads of some records copied into `out` at `out_off`. */
void fr_gather_records(const u8 *data, const i64 *payload, const i64 *length, i64 n,
                       const i64 *out_off, u8 *out)
{
    for (i64 i = 0; i < n; i++)
        memcpy(out + out_off[i], data + payload[i], (size_t)length[i]);
}
