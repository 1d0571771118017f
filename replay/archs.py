"""Architecture names: the cost tables' names and how ``uname -m`` maps onto them."""

ARCHS = ("arm64", "x86", "riscv")
# uname -m (meta.json "arch") → the cost tables' architecture names.
ARCH_OF_MACHINE = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64", "riscv64": "riscv"}
