"""A Redis stand-in over TCP (fakeredis) for machines without redis-server: `--port N`."""

from __future__ import annotations

import argparse

from fakeredis import TcpFakeServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = TcpFakeServer(("127.0.0.1", args.port), server_type="redis")
    server.serve_forever()


if __name__ == "__main__":
    main()
