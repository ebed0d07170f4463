"""``p2p-swarm``: ``run`` starts and watches a whole swarm, ``audit`` checks its logs."""
from __future__ import annotations

import sys

USAGE = """usage: p2p-swarm COMMAND [options]

commands:
  run [CONFIG_DIR]   start every peer of PeerInfo.cfg, show progress, verify the files
  push FILE HOST...  send one file to hosts over ssh as a swarm, each copy verified
  simulate [CONFIG_DIR] the swarm of a config on simulated hosts and clock, in seconds
  audit WORK_DIR     check the event logs of a finished swarm against the protocol
  hashes [CONFIG_DIR] write FileName.hashes so that every peer checks every piece
  check -- COMMAND   run another implementation's peer with ours, score it by the rubric

'p2p-swarm COMMAND --help' explains each command."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        from twisted_p2p.launcher.run import main as run_main

        return run_main(rest)
    if command == "push":
        from twisted_p2p.launcher.push import main as push_main

        return push_main(rest)
    if command == "simulate":
        from twisted_p2p.launcher.simulate import main as simulate_main

        return simulate_main(rest)
    if command == "audit":
        from twisted_p2p.launcher.audit import main as audit_main

        return audit_main(rest)
    if command == "check":
        from twisted_p2p.launcher.check import main as check_main

        return check_main(rest)
    if command == "hashes":
        from twisted_p2p.launcher.hashes import main as hashes_main

        return hashes_main(rest)
    print(f"p2p-swarm: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
