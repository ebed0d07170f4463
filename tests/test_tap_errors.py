"""makeService's one-line errors for the files that only some options name."""
from __future__ import annotations

import pytest
from support import swarm_config, write_config

from twisted_p2p import tap


def options_for(tmp_path, *extra: str) -> tap.Options:
    write_config(tmp_path, swarm_config([1001, 1002], [1001], 1024, 256))
    options = tap.Options()
    options.parseOptions(["--id", "1002", "--config-dir", str(tmp_path), "--work-dir", str(tmp_path), *extra])
    return options


def test_a_missing_tls_certificate_is_one_line_naming_it(tmp_path):
    pytest.importorskip("OpenSSL")
    path = tmp_path / "push.pem"
    with pytest.raises(SystemExit) as ended:
        tap.makeService(options_for(tmp_path, "--tls-cert", str(path)))
    assert str(ended.value) == f"p2ppeer 1002: --tls-cert {path}: No such file or directory"


def test_a_tls_certificate_that_is_not_one_is_one_line_naming_it(tmp_path):
    pytest.importorskip("OpenSSL")
    path = tmp_path / "push.pem"
    path.write_text("not a certificate\n")
    with pytest.raises(SystemExit) as ended:
        tap.makeService(options_for(tmp_path, "--tls-cert", str(path)))
    assert str(ended.value).startswith(f"p2ppeer 1002: --tls-cert {path}: not a PEM certificate with its key (")
    assert "\n" not in str(ended.value)


@pytest.mark.parametrize("given, named", [("1001,1009", "1009"), ("1001,1002", "1002")])
def test_neighbours_not_of_peerinfo_or_ourselves_are_one_line_naming_them(tmp_path, given, named):
    with pytest.raises(SystemExit) as ended:
        tap.makeService(options_for(tmp_path, "--neighbours", given))
    assert str(ended.value) == (f"p2ppeer 1002: {tmp_path}/PeerInfo.cfg: --neighbours must name other peers of "
                                f"PeerInfo.cfg, not {named}")
