"""The mount allow-list: what an agent group may be given of the owner's folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanoclaw.errors import ConfigError
from nanoclaw.sandbox.mounts import Allowlist, MountRefused, mount_name


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    home = tmp_path / "owner"
    for folder in ("projects/site", "projects/keys/.ssh", "photos", ".ssh", ".aws", "docs/.env.d",
                   ".config/gcloud", "clean/sub"):
        (home / folder).mkdir(parents=True)
    (home / "projects/site/index.html").write_text("hi")
    (home / "docs/server.pem").write_text("-----BEGIN")
    return home


def allowlist(tmp_path: Path, tree: Path, entries: list[object], blocked: list[str] | None = None) -> Allowlist:
    config = tmp_path / "config" / "nanoclaw"
    config.mkdir(parents=True, exist_ok=True)
    path = config / "mount-allowlist.json"
    path.write_text(json.dumps({"allowed": entries, **({"blocked": blocked} if blocked else {})}))
    return Allowlist.load(path, protected=(tmp_path / "nanoclaw-home",))


def test_a_folder_inside_an_allowed_one_is_read_only_unless_the_entry_is_writable(tmp_path: Path, tree: Path) -> None:
    al = allowlist(tmp_path, tree, [str(tree / "projects"), {"path": str(tree / "photos"), "writable": True}])
    assert al.check(str(tree / "projects" / "site")) == tree / "projects" / "site"
    with pytest.raises(MountRefused, match="read-only"):
        al.check(str(tree / "projects" / "site"), writable=True)
    assert al.check(str(tree / "photos"), writable=True) == tree / "photos"


def test_the_closest_entry_decides(tmp_path: Path, tree: Path) -> None:
    al = allowlist(tmp_path, tree, [{"path": str(tree), "writable": False},
                                    {"path": str(tree / "clean"), "writable": True}])
    assert al.check(str(tree / "clean" / "sub"), writable=True) == tree / "clean" / "sub"


@pytest.mark.parametrize("folder", [".ssh", ".aws", ".config/gcloud", "docs/.env.d", "projects/keys/.ssh"])
def test_blocked_names_win_over_the_allow_list(tmp_path: Path, tree: Path, folder: str) -> None:
    al = allowlist(tmp_path, tree, [str(tree)])
    with pytest.raises(MountRefused, match="blocked"):
        al.check(str(tree / folder))


@pytest.mark.parametrize("folder", ["", "projects", "docs"])
def test_a_folder_holding_secrets_directly_is_refused(tmp_path: Path, tree: Path, folder: str) -> None:
    al = allowlist(tmp_path, tree, [str(tree)])
    with pytest.raises(MountRefused, match="contains"):
        al.check(str(tree / folder) if folder else str(tree))


def test_symlinks_are_resolved_before_the_checks(tmp_path: Path, tree: Path) -> None:
    (tree / "projects" / "innocent").symlink_to(tree / ".ssh")
    (tmp_path / "outside").mkdir()
    (tree / "projects" / "elsewhere").symlink_to(tmp_path / "outside")
    al = allowlist(tmp_path, tree, [str(tree / "projects")])
    with pytest.raises(MountRefused, match="blocked"):
        al.check(str(tree / "projects" / "innocent"))
    with pytest.raises(MountRefused, match="not in the mount allow-list"):
        al.check(str(tree / "projects" / "elsewhere"))


def test_dotdot_cannot_climb_out_of_an_allowed_folder(tmp_path: Path, tree: Path) -> None:
    al = allowlist(tmp_path, tree, [str(tree / "projects")])
    with pytest.raises(MountRefused):
        al.check(str(tree / "projects" / ".." / "photos"))


def test_the_nanoclaw_home_and_config_are_never_mountable(tmp_path: Path, tree: Path) -> None:
    (tmp_path / "nanoclaw-home" / "groups").mkdir(parents=True)
    al = allowlist(tmp_path, tree, [str(tmp_path)])
    for path in (tmp_path / "nanoclaw-home", tmp_path / "nanoclaw-home" / "groups", tmp_path / "config"):
        with pytest.raises(MountRefused, match="never mounted"):
            al.check(str(path))


def test_extra_blocked_patterns_from_the_file(tmp_path: Path, tree: Path) -> None:
    al = allowlist(tmp_path, tree, [str(tree)], blocked=["photos"])
    with pytest.raises(MountRefused, match="'photos' is blocked"):
        al.check(str(tree / "photos"))


@pytest.mark.parametrize("raw,why", [("relative/path", "absolute"), ("", "full path"), ("/no/such/folder", "no such"),
                                     ("/tmp/\0x", "full path")])
def test_bad_paths_get_a_clear_refusal(tmp_path: Path, tree: Path, raw: str, why: str) -> None:
    with pytest.raises(MountRefused, match=why):
        allowlist(tmp_path, tree, ["/"]).check(raw)


def test_no_allow_list_file_means_nothing_is_mountable(tmp_path: Path, tree: Path) -> None:
    al = Allowlist.load(tmp_path / "missing" / "mount-allowlist.json")
    with pytest.raises(MountRefused, match="nothing yet"):
        al.check(str(tree / "photos"))


@pytest.mark.parametrize("content,why", [("{not json", "line 1"), ('{"allowed": [{"writable": true}]}', "needs a path"),
                                         ('{"allowed": "x"}', "expected"), ('{"blocked": [1]}', "list of name")])
def test_a_broken_allow_list_says_what_is_wrong(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "mount-allowlist.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=why):
        Allowlist.load(path)


def test_mount_names_are_made_safe() -> None:
    assert mount_name(None, Path("/home/me/My Photos")) == "my-photos"
    assert mount_name("../../etc", Path("/x")) == "etc"
    assert mount_name(None, Path("/")) == "root"
    assert len(mount_name("x" * 100, Path("/x"))) == 40
