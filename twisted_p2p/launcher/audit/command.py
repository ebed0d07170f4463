"""``p2p-swarm audit WORK_DIR``: the command line."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from twisted_p2p.config import ConfigError, load
from twisted_p2p.layout import COMMON_CFG

from .result import audit, report
from .rubric import rubric
from .rubricpage import write_rubric_page

RULES_HELP = """\
rules checked (each violation is printed as FILE:LINE: RULE: DETAIL, then the
course's sentence it rests on; advice as FILE:LINE: advice: RULE: DETAIL):
  * every line is a SPEC §5 sentence after a time stamp with the date, hour,
    minute and second in any layout ("The format of [Time] is up to you"): ours,
    ISO with a space or T, brackets, fractions, zones, java.util.Date, ctime,
    12/03/2026 (month first unless the first number is above 12) and more. A
    time without a date is a violation, told once per log at its first line,
    and so is a line that is no sentence (it is skipped); other spacing, a
    preferred list not ascending and stamps the audit cannot read are advice
    (the line is still checked)
  * ID1 of every sentence is the peer whose log it is; every other ID is in
    PeerInfo.cfg and not the writer; piece indexes are below ceil(FileSize/PieceSize)
  * each peer 'makes a connection to' every peer listed before it and 'is
    connected from' every peer listed after it; a connection made again (after a
    restart, or a dropped one dialled again) shows in the neighbour's log too
  * never more than k (NumberOfPreferredNeighbors) preferred neighbors
  * consecutive optimistic-neighbor lines are at least m
    (OptimisticUnchokingInterval) seconds apart, less the slack (--slack) and
    the stamps' precision (a second for stamps in whole seconds)
  * download counts rise by one from 1 and never pass the number of pieces;
    no piece is downloaded twice
  * a seed (hasFile 1) downloads nothing and logs no completion; every other peer
    logs one completion line, once it has every piece, and downloads nothing after it
  * each 'have' from X for piece i matches a 'downloaded the piece i' line in X's
    log (when it is there; a 'have' from a seed is advice), and each piece
    downloaded from X is one X is a seed for or logged downloading -- or one of as
    many pieces as X's restarts resumed beyond the count it had logged (lines a
    kill lost)
  * there is a log for every peer of PeerInfo.cfg (logs of other peers: advice)

a peer started again appends a new session to its log; the audit recognises one
where a neighbour it was connected to connects again and every later line fits a
fresh start, with two or more neighbours connecting at once or a download count
that does not follow the last one. It prints 'FILE:LINE: peer N restarted (new
session) with C pieces' and checks counts, completion and timing per session: a
session counts on from the pieces it resumed, and pieces from before it may come
again only as many as the count went down by.

exit status: 0 clean (advice alone too), 1 violations of the course found, 2 usage or\nconfiguration error"""



def choose_config_dir(work_dir: Path, given: str | None) -> tuple[Path, str]:
    """(config dir, why): as given, else WORK_DIR if it holds Common.cfg, else ./conf if
    it exists, else the current directory -- the places a swarm's config usually is."""
    if given is not None:
        return Path(given), "--config-dir"
    if (work_dir / COMMON_CFG).is_file():
        return work_dir, "WORK_DIR holds Common.cfg"
    if Path("conf").is_dir():
        return Path("conf"), "./conf exists"
    return Path("."), "the current directory"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm audit",
        description="Check the event logs (log_peer_*.log) of a finished swarm against the "
        "P2PFILESHARINGPROJ protocol, using its Common.cfg and PeerInfo.cfg.",
        epilog=RULES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("work_dir", metavar="WORK_DIR", help="the directory the peers ran in (holds the logs)")
    parser.add_argument("--config-dir", metavar="DIR",
                        help="directory with Common.cfg and PeerInfo.cfg "
                        "[default: WORK_DIR if it holds Common.cfg, else ./conf if it exists, else .]")
    parser.add_argument("--slack", type=float, metavar="SECONDS",
                        help="timing slack for the optimistic interval [default: the larger of 0.5 s and 10%% of m]")
    parser.add_argument("--limit", type=int, default=20, metavar="N",
                        help="print at most N findings per file and rule, 0 for all [default: 20]")
    parser.add_argument("--rubric", action="store_true",
                        help="first print, for each item a grader scores (start-up, after connection, file "
                        "exchange, stop), a few log lines that show it as FILE:LINE and the line, each with "
                        "what it shows, and say which items the logs cannot show -- to show and explain "
                        "one by one in a demo; then audit as usual")
    parser.add_argument("--html", metavar="FILE",
                        help="with --rubric: also write the rubric view as a page (FILE), to show in a video "
                        "beside the dashboard")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the audit; 0 when clean (advice does not count), 1 with violations, 2 for usage or config errors."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    work_dir = Path(args.work_dir)
    if not work_dir.is_dir():
        print(f"p2p-swarm audit: {work_dir}: not a directory", file=sys.stderr)
        return 2
    if args.html is not None and not args.rubric:
        print("p2p-swarm audit: --html writes the rubric view: give --rubric too", file=sys.stderr)
        return 2
    if args.limit < 0 or (args.slack is not None and args.slack < 0):
        print("p2p-swarm audit: --limit and --slack must not be negative", file=sys.stderr)
        return 2
    config_dir, why = choose_config_dir(work_dir, args.config_dir)
    try:
        config = load(config_dir)
    except ConfigError as exc:
        print(f"p2p-swarm audit: {exc}", file=sys.stderr)
        return 2
    print(f"auditing {work_dir} with the config in {config_dir} ({why}): "
          f"{len(config.peers)} peers, {config.common.num_pieces} pieces")
    result = audit(work_dir, config, args.slack)
    shown = rubric(result) if args.rubric else []
    verdict = report(result, args.limit)
    for line in shown + verdict:
        print(line)
    if args.html is not None:
        try:
            write_rubric_page(Path(args.html), shown + verdict, f"Rubric: the logs of {work_dir}")
        except OSError as exc:
            print(f"p2p-swarm audit: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"rubric page: {args.html}")
    return 0 if result.clean else 1

