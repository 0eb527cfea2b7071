"""Bad input files given on the command line: genotype files that are not UTF-8 text, binary,
garbage, or a folder. Each is one error line naming the file (exit 1), never a traceback.
(Bad params and --set values: the config engineer's tests in this group.)"""

from __future__ import annotations

import pytest

from conftest import clean_error

BAD_GENOTYPES = {
    "latin1": "Genotype(normal=[('sep_conv_3x3', 0)], caf\xe9)".encode("latin-1"),
    "utf16": '{"normal": []}'.encode("utf-16"),
    "binary": bytes(range(256)) * 4,
    "garbage": b"Genotype(normal=[('sep_conv_3x3', 0), oops",
}


@pytest.mark.parametrize("kind", sorted(BAD_GENOTYPES))
def test_bad_genotype_file_is_named(kind, darts_cli, tmp_path):
    path = tmp_path / f"{kind}.json"
    path.write_bytes(BAD_GENOTYPES[kind])
    clean_error(darts_cli(["genotype", "show", path]), str(path))


def test_non_utf8_genotype_file_given_to_info(darts_cli, tmp_path):
    path = tmp_path / "cell.txt"
    path.write_bytes(BAD_GENOTYPES["latin1"])
    line = clean_error(darts_cli(["info", "--genotype", path, "--dataset", "cifar10"]), str(path), "UTF-8")
    assert "UnicodeDecodeError" not in line
