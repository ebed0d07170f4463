"""Common.cfg and PeerInfo.cfg (SPEC §1): the example, and every error naming file and line."""
from __future__ import annotations

import pytest

from twisted_p2p.config import (
    Common,
    ConfigError,
    PeerInfo,
    SwarmConfig,
    load,
    load_common,
    load_peers,
)
from twisted_p2p.layout import COMMON_CFG, PEER_INFO_CFG

COMMON_LINES = [
    "NumberOfPreferredNeighbors 2",
    "UnchokingInterval 5",
    "OptimisticUnchokingInterval 15",
    "FileName TheFile.dat",
    "FileSize 10000232",
    "PieceSize 32768",
]
PEER_LINES = [
    "1001 lin114-00.cise.ufl.edu 6008 1",
    "1002 lin114-01.cise.ufl.edu 6008 0",
    "1003 lin114-02.cise.ufl.edu 6008 0",
    "1004 lin114-03.cise.ufl.edu 6008 0",
    "1005 lin114-04.cise.ufl.edu 6008 0",
    "1006 lin114-05.cise.ufl.edu 6008 0",
]


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def common_error(tmp_path, lines) -> ConfigError:
    path = write(tmp_path, COMMON_CFG, lines)
    with pytest.raises(ConfigError) as info:
        load_common(path)
    assert info.value.path == str(path)
    return info.value


def peers_error(tmp_path, lines) -> ConfigError:
    path = write(tmp_path, PEER_INFO_CFG, lines)
    with pytest.raises(ConfigError) as info:
        load_peers(path)
    assert info.value.path == str(path)
    return info.value


# -- Common.cfg --------------------------------------------------------------------


def test_spec_example(tmp_path):
    common = load_common(write(tmp_path, COMMON_CFG, COMMON_LINES))
    assert common == Common(2, 5, 15, "TheFile.dat", 10000232, 32768)
    assert common.num_pieces == 306
    assert common.piece_length(0) == 32768
    assert common.piece_length(304) == 32768
    assert common.piece_length(305) == 5992
    assert common.piece_offset(0) == 0
    assert common.piece_offset(1) == 32768
    assert common.piece_offset(305) == 305 * 32768 == 9994240
    assert common.piece_offset(305) + common.piece_length(305) == 10000232
    assert sum(common.piece_length(i) for i in range(306)) == 10000232


@pytest.mark.parametrize(
    ("file_size", "piece_size", "pieces", "last"),
    [
        (20971520, 16384, 1280, 16384),  # the demo setting: an exact multiple
        (1, 1, 1, 1),
        (1, 32768, 1, 1),  # one short piece
        (32769, 32768, 2, 1),
        (10, 3, 4, 1),
        (12, 3, 4, 3),
    ],
)
def test_piece_geometry(file_size, piece_size, pieces, last):
    common = Common(1, 1, 1, "f", file_size, piece_size)
    assert common.num_pieces == pieces
    assert common.piece_length(pieces - 1) == last
    assert all(common.piece_length(i) == piece_size for i in range(pieces - 1))
    assert sum(common.piece_length(i) for i in range(pieces)) == file_size
    for outside in (-1, pieces, pieces + 1):  # never a silently plausible length
        with pytest.raises(IndexError):
            common.piece_length(outside)


def test_comments_blank_lines_and_whitespace_ignored(tmp_path):
    lines = [
        "# The swarm's common settings",
        "",
        "   ",
        "NumberOfPreferredNeighbors\t2",
        "   # indented comment",
        "  UnchokingInterval    5  ",
        "OptimisticUnchokingInterval 15",
        "#FileName Other.dat",
        "FileName TheFile.dat",
        "FileSize 10000232",
        "PieceSize 32768",
        "# trailing comment",
    ]
    assert load_common(write(tmp_path, COMMON_CFG, lines)) == Common(2, 5, 15, "TheFile.dat", 10000232, 32768)


def test_any_key_order_and_crlf(tmp_path):
    path = tmp_path / COMMON_CFG
    path.write_bytes("\r\n".join(reversed(COMMON_LINES)).encode() + b"\r\n")
    assert load_common(path) == Common(2, 5, 15, "TheFile.dat", 10000232, 32768)


def test_utf8_byte_order_mark_is_ignored(tmp_path):
    """Windows editors start files with a BOM; it is not part of the first key."""
    path = tmp_path / COMMON_CFG
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(COMMON_LINES).encode())
    assert load_common(path).preferred_neighbors == 2


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (
            COMMON_LINES + ["Colour blue"],
            7,
            "unknown key 'Colour'; expected one of NumberOfPreferredNeighbors, UnchokingInterval, "
            "OptimisticUnchokingInterval, FileName, FileSize, PieceSize",
        ),
        (["# c", "filesize 10"] + COMMON_LINES, 2, "unknown key 'filesize';"),  # keys are exact
        (["NumberOfPreferredNeighbours 2"] + COMMON_LINES[1:], 1, "unknown key 'NumberOfPreferredNeighbours';"),
        (COMMON_LINES + ["", "FileSize 5"], 8, "FileSize is given twice"),
        (COMMON_LINES[:1] + COMMON_LINES, 2, "NumberOfPreferredNeighbors is given twice"),
        (COMMON_LINES[:4] + ["FileSize 10.5", "PieceSize 1"], 5, "FileSize must be a whole number, not '10.5'"),
        (COMMON_LINES[:4] + ["FileSize 1e6", "PieceSize 1"], 5, "FileSize must be a whole number, not '1e6'"),
        (COMMON_LINES[:4] + ["FileSize big", "PieceSize 1"], 5, "FileSize must be a whole number, not 'big'"),
        (COMMON_LINES[:4] + ["FileSize -5", "PieceSize 1"], 5, "FileSize must be a whole number, not '-5'"),
        (COMMON_LINES[:4] + ["FileSize +5", "PieceSize 1"], 5, "FileSize must be a whole number, not '+5'"),
        (COMMON_LINES[:4] + ["FileSize \u0663", "PieceSize 1"], 5, "FileSize must be a whole number, not '\u0663'"),
        (COMMON_LINES[:5] + ["PieceSize 0"], 6, "PieceSize must be positive, not 0"),
        (COMMON_LINES[:4] + ["FileSize 000", "PieceSize 1"], 5, "FileSize must be positive, not 0"),
        (["NumberOfPreferredNeighbors 0"] + COMMON_LINES[1:], 1, "NumberOfPreferredNeighbors must be positive, not 0"),
        (COMMON_LINES[:1] + ["UnchokingInterval 0"] + COMMON_LINES[2:], 2, "UnchokingInterval must be positive, not 0"),
        (COMMON_LINES[:2] + ["OptimisticUnchokingInterval x"] + COMMON_LINES[3:], 3, "must be a whole number"),
        (COMMON_LINES[:3] + ["FileName dir/TheFile.dat"] + COMMON_LINES[4:], 4,
         "FileName must be a plain file name, not 'dir/TheFile.dat'"),
        (COMMON_LINES[:3] + ["FileName /etc/passwd"] + COMMON_LINES[4:], 4,
         "FileName must be a plain file name, not '/etc/passwd'"),
        (COMMON_LINES[:3] + ["FileName ..\\x.dat"] + COMMON_LINES[4:], 4, "FileName must be a plain file name"),
        (COMMON_LINES[:3] + ["FileName .."] + COMMON_LINES[4:], 4, "FileName must be a plain file name, not '..'"),
        (COMMON_LINES[:3] + ["FileName ."] + COMMON_LINES[4:], 4, "FileName must be a plain file name, not '.'"),
        (COMMON_LINES[:3] + ["FileName a\\b"] + COMMON_LINES[4:], 4,
         "FileName must be a plain file name, not 'a\\\\b'"),
        (COMMON_LINES[:3] + ["FileName The File.dat"] + COMMON_LINES[4:], 4,
         "expected 'Key Value', got 'FileName The File.dat'"),
        (COMMON_LINES[:5] + ["PieceSize"], 6, "expected 'Key Value', got 'PieceSize'"),
        (COMMON_LINES[:5] + ["PieceSize 1 2"], 6, "expected 'Key Value', got 'PieceSize 1 2'"),
        (COMMON_LINES[:5] + ["PieceSize=32768"], 6, "expected 'Key Value', got 'PieceSize=32768'"),
    ],
)
def test_common_errors_name_file_and_line(tmp_path, lines, line, message):
    error = common_error(tmp_path, lines)
    assert error.line == line
    assert str(error).startswith(f"{tmp_path / COMMON_CFG}:{line}: ")
    assert message in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        ([5], "missing PieceSize"),
        ([0], "missing NumberOfPreferredNeighbors"),
        ([3, 4], "missing FileName, FileSize"),
        (list(range(6)), "missing NumberOfPreferredNeighbors, UnchokingInterval, OptimisticUnchokingInterval, "
         "FileName, FileSize, PieceSize"),
    ],
)
def test_common_missing_key(tmp_path, drop, missing):
    error = common_error(tmp_path, [line for i, line in enumerate(COMMON_LINES) if i not in drop])
    assert error.line is None
    assert str(error) == f"{tmp_path / COMMON_CFG}: {missing}"


def test_common_missing_file(tmp_path):
    path = tmp_path / "nowhere" / COMMON_CFG
    with pytest.raises(ConfigError) as info:
        load_common(path)
    assert str(info.value) == f"{path}: file not found"


def test_common_unreadable(tmp_path):
    path = tmp_path / COMMON_CFG
    path.write_bytes(b"FileName \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_common(path)
    assert str(info.value).startswith(f"{path}: cannot read: ")


def test_piece_size_must_fit_a_message_length(tmp_path):
    lines = COMMON_LINES[:4] + [f"FileSize {2**40}", f"PieceSize {2**32 - 5}"]
    error = common_error(tmp_path, lines)
    assert str(error) == f"{tmp_path / COMMON_CFG}: PieceSize {2**32 - 5} does not fit a message length"
    ok = COMMON_LINES[:4] + [f"FileSize {2**40}", f"PieceSize {2**32 - 6}"]
    assert load_common(write(tmp_path, COMMON_CFG, ok)).piece_size == 2**32 - 6


def test_piece_count_must_fit_an_index(tmp_path):
    lines = COMMON_LINES[:4] + [f"FileSize {2**32}", "PieceSize 1"]
    error = common_error(tmp_path, lines)
    assert str(error) == f"{tmp_path / COMMON_CFG}: {2**32} pieces do not fit a 4-byte index"


def test_file_name_with_dots_inside_is_allowed_only_without_dotdot(tmp_path):
    lines = COMMON_LINES[:3] + ["FileName .hidden.tar.gz"] + COMMON_LINES[4:]
    assert load_common(write(tmp_path, COMMON_CFG, lines)).file_name == ".hidden.tar.gz"


# -- PeerInfo.cfg --------------------------------------------------------------------


def test_peer_info_example(tmp_path):
    lines = ["# peerID host port hasFile", ""] + PEER_LINES + ["1007 localhost 6008 1"]
    peers = load_peers(write(tmp_path, PEER_INFO_CFG, lines))
    assert [p.peer_id for p in peers] == [1001, 1002, 1003, 1004, 1005, 1006, 1007]
    assert peers[0] == PeerInfo(1001, "lin114-00.cise.ufl.edu", 6008, True)
    assert peers[1] == PeerInfo(1002, "lin114-01.cise.ufl.edu", 6008, False)
    assert [p.has_file for p in peers] == [True, False, False, False, False, False, True]  # several seeds


def test_peer_limits_accepted(tmp_path):
    peers = load_peers(write(tmp_path, PEER_INFO_CFG, [f"{2**32 - 1} h 65535 1", "1 h 1 0"]))
    assert peers == (PeerInfo(2**32 - 1, "h", 65535, True), PeerInfo(1, "h", 1, False))


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (PEER_LINES[:2] + ["1001 otherhost 7000 0"], 3, "peer ID 1001 is already on line 1"),
        (["# x"] + PEER_LINES[:2] + ["1009 lin114-01.cise.ufl.edu 6008 0"], 4,
         "lin114-01.cise.ufl.edu:6008 is already on line 3"),
        (PEER_LINES[:1] + ["1002 LIN114-00.cise.ufl.edu 6008 0"], 2,
         "LIN114-00.cise.ufl.edu:6008 is already on line 1"),  # host names ignore case
        (["0 localhost 6008 1"], 1, "peerID must be positive, not 0"),
        ([f"{2**32} localhost 6008 1"], 1, f"peerID must be at most {2**32 - 1}, not {2**32}"),
        (["-1 localhost 6008 1"], 1, "peerID must be a whole number, not '-1'"),
        (["abc localhost 6008 1"], 1, "peerID must be a whole number, not 'abc'"),
        (["1001 localhost 0 1"], 1, "port must be positive, not 0"),
        (["1001 localhost 65536 1"], 1, "port must be at most 65535, not 65536"),
        (["1001 localhost 6008x 1"], 1, "port must be a whole number, not '6008x'"),
        (["1001 localhost 6008 2"], 1, "hasFile must be 0 or 1, not '2'"),
        (["1001 localhost 6008 yes"], 1, "hasFile must be 0 or 1, not 'yes'"),
        (["1001 localhost 6008 01"], 1, "hasFile must be 0 or 1, not '01'"),
        (["1001 localhost 6008"], 1, "expected 'peerID host port hasFile', got '1001 localhost 6008'"),
        (["1001 localhost 6008 1 extra"], 1, "expected 'peerID host port hasFile', got '1001 localhost 6008 1 extra'"),
        (PEER_LINES[:1] + ["", "1002"], 3, "expected 'peerID host port hasFile', got '1002'"),
    ],
)
def test_peer_errors_name_file_and_line(tmp_path, lines, line, message):
    error = peers_error(tmp_path, lines)
    assert error.line == line
    assert str(error) == f"{tmp_path / PEER_INFO_CFG}:{line}: {message}"


@pytest.mark.parametrize("lines", [[], [""], ["# only a comment", "   "]])
def test_empty_peer_info(tmp_path, lines):
    error = peers_error(tmp_path, lines)
    assert str(error) == f"{tmp_path / PEER_INFO_CFG}: no peers listed"


def test_no_seed(tmp_path):
    error = peers_error(tmp_path, ["1001 localhost 6008 0", "1002 localhost 6009 0"])
    assert str(error) == (
        f"{tmp_path / PEER_INFO_CFG}: no peer has the file (hasFile 1), so the swarm can never finish"
    )


def test_peer_info_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_peers(tmp_path / PEER_INFO_CFG)
    assert str(info.value) == f"{tmp_path / PEER_INFO_CFG}: file not found"


# -- both files ----------------------------------------------------------------------


def test_load_directory(tmp_path):
    write(tmp_path, COMMON_CFG, COMMON_LINES)
    write(tmp_path, PEER_INFO_CFG, PEER_LINES)
    config = load(tmp_path)
    assert config.common.num_pieces == 306
    assert len(config.peers) == 6
    assert config.peer_ids == frozenset(range(1001, 1007))


def test_load_directory_missing_peer_info(tmp_path):
    write(tmp_path, COMMON_CFG, COMMON_LINES)
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    assert str(info.value) == f"{tmp_path / PEER_INFO_CFG}: file not found"


def test_load_directory_bad_common_reported_first(tmp_path):
    write(tmp_path, COMMON_CFG, COMMON_LINES + ["Bogus 1"])
    write(tmp_path, PEER_INFO_CFG, PEER_LINES)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / COMMON_CFG}:7: unknown key 'Bogus'")


def _swarm() -> SwarmConfig:
    peers = tuple(PeerInfo(pid, "localhost", 6000 + pid, pid == 1001) for pid in (1003, 1001, 1002))
    return SwarmConfig(Common(1, 1, 1, "f", 10, 3), peers)


def test_peers_before_follows_file_order_not_id_order():
    config = _swarm()
    assert config.peers_before(1003) == ()
    assert [p.peer_id for p in config.peers_before(1001)] == [1003]
    assert [p.peer_id for p in config.peers_before(1002)] == [1003, 1001]


def test_peer_lookup():
    config = _swarm()
    assert config.peer(1002) == PeerInfo(1002, "localhost", 7002, False)
    assert config.peer(1001).has_file
    with pytest.raises(KeyError):
        config.peer(9999)
    with pytest.raises(KeyError):
        config.peers_before(9999)


def test_config_error_without_line():
    error = ConfigError("conf/Common.cfg", None, "missing FileSize")
    assert str(error) == "conf/Common.cfg: missing FileSize"
    assert (error.path, error.line, error.message) == ("conf/Common.cfg", None, "missing FileSize")
    assert str(ConfigError("x.cfg", 3, "bad")) == "x.cfg:3: bad"
