"""`python -m weir COMMAND`: `build` (see `weir.build`)."""

import sys


def main() -> int:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m weir build PLUGIN_DIR --wit WIT_DIR -o OUT.wasm [-q]")
        return 0 if argv else 2
    if argv[0] != "build":
        print(f"python -m weir: unknown command {argv[0]!r}; the only command is `build`", file=sys.stderr)
        return 2
    from .build import main as build_main

    return build_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
