"""safefs, the one way into sandbox-writable trees: each property on both resolvers (openat2 and the
O_NOFOLLOW walk), against the tricks an agent can play with its own folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

import pytest

from nanoclaw import safefs
from nanoclaw.safefs import resolve
from nanoclaw.safefs import Tree, UnsafePath, acting_as, copy_tree

AGENT = 1_900_065_000  # a uid of the sandbox range, owner of the tree


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(resolve, "openat2_available", lambda: False)
    else:
        assert safefs.openat2_available(), "this kernel has openat2 (5.6+): the test must exercise it"
    return str(request.param)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file outside the tree: what links point at."""
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (outside / "secret").write_text("root's own\n")
    (outside / "secret").chmod(0o600)
    return outside / "secret"


@pytest.fixture
def tree(tmp_path: Path, resolver: str) -> Iterator[Tree]:
    root = tmp_path / "tree"
    with Tree.open(root, owner=AGENT if os.geteuid() == 0 else None, create=True) as t:
        yield t


def test_reads_refuse_links_at_the_end_and_on_the_way(tree: Tree, secret: Path) -> None:
    (tree.path / "link").symlink_to(secret)
    (tree.path / "dirlink").symlink_to(secret.parent)
    for rel in ("link", "dirlink/secret", "../outside/secret", "/etc/passwd"):
        with pytest.raises(UnsafePath):
            tree.read_bytes(rel)


def test_writes_replace_a_planted_link_instead_of_following_it(tree: Tree, secret: Path) -> None:
    (tree.path / "memory.md").symlink_to(secret)
    (tree.path / "dangling").symlink_to(secret.parent / "created")
    tree.write_text("memory.md", "fresh")
    tree.write_text("dangling", "fresh")
    assert secret.read_text() == "root's own\n" and not (secret.parent / "created").exists()
    assert (tree.path / "memory.md").read_text() == "fresh" and not (tree.path / "memory.md").is_symlink()
    (tree.path / "sub").symlink_to(secret.parent)
    with pytest.raises(UnsafePath):
        tree.write_text("sub/secret", "through a linked folder")
    assert secret.read_text() == "root's own\n"


def test_write_without_replace_leaves_whatever_is_there(tree: Tree, secret: Path) -> None:
    (tree.path / "link").symlink_to(secret)
    assert tree.write_text("link", "x", replace=False) is False
    assert (tree.path / "link").is_symlink() and secret.read_text() == "root's own\n"
    assert tree.write_text("new", "x", replace=False) is True


def test_fifos_sockets_and_huge_files_are_refused_without_blocking(tree: Tree) -> None:
    os.mkfifo(tree.path / "fifo")
    with open(tree.path / "sparse", "wb") as f:
        f.truncate(1 << 40)  # a terabyte of nothing
    with pytest.raises(UnsafePath, match="fifo"):
        tree.read_bytes("fifo")  # returns at once: never a reader blocked on a FIFO
    with pytest.raises(UnsafePath, match="larger than"):
        tree.read_bytes("sparse", limit=1 << 20)
    with pytest.raises(UnsafePath):
        tree.open_fifo("sparse")


def test_mkdir_through_a_link_is_refused(tree: Tree, secret: Path) -> None:
    (tree.path / "inbox").symlink_to(secret.parent)
    with pytest.raises(UnsafePath):
        tree.mkdir("inbox/new", parents=True)
    assert not (secret.parent / "new").exists()


def test_walk_lists_links_without_entering_them_and_is_bounded(tree: Tree, secret: Path) -> None:
    (tree.path / "to-dir").symlink_to(secret.parent)
    deep = tree.path
    for _ in range(10):
        deep = deep / "d"
    deep.mkdir(parents=True)
    too_deep: list[str] = []
    seen = dict(tree.walk(max_depth=5, too_deep=too_deep.append))
    assert seen["to-dir"].kind == "link" and not any(p.startswith("to-dir/") for p in seen)
    assert too_deep == ["d/d/d/d/d/d"]
    with pytest.raises(UnsafePath, match="more than"):
        list(tree.walk(max_entries=3))


def test_copy_tree_keeps_links_as_links_and_holes_as_holes(tree: Tree, secret: Path, tmp_path: Path) -> None:
    (tree.path / "to-secret").symlink_to(secret)
    os.mkfifo(tree.path / "fifo")
    with open(tree.path / "sparse", "wb") as f:
        f.seek(50 << 20)
        f.write(b"end")
    with Tree.open(tmp_path / "copy", create=True) as copy:
        assert copy_tree(tree, copy) == 1
    assert os.readlink(tmp_path / "copy" / "to-secret") == str(secret)
    assert not (tmp_path / "copy" / "fifo").exists()
    st = (tmp_path / "copy" / "sparse").stat()
    assert st.st_size == (50 << 20) + 3 and st.st_blocks * 512 < 1 << 20


def test_set_aside_and_remove_never_follow(tree: Tree, secret: Path) -> None:
    (tree.path / "CLAUDE.md").symlink_to(secret)
    aside = tree.set_aside("CLAUDE.md", "set-aside-1")
    assert (tree.path / str(aside)).is_symlink() and secret.exists()
    (tree.path / "dir").mkdir()
    (tree.path / "dir" / "in").symlink_to(secret.parent)
    if os.geteuid() == 0:
        tree.chown_all(AGENT)  # made by the test as root; the agent's own, as the host's hand-over makes it
    assert tree.remove("dir")
    assert secret.read_text() == "root's own\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="fsuid switching exists only on a root host")
def test_acting_as_the_agent_cannot_write_what_root_can(tmp_path: Path, secret: Path) -> None:
    """Defence in depth: even a path this module missed leads only where the agent's uid could go."""
    with acting_as(AGENT):
        with pytest.raises(PermissionError):
            secret.write_text("overwritten")
        with pytest.raises(PermissionError):
            (Path("/etc") / "nanoclaw-test").write_text("x")
    assert secret.read_text() == "root's own\n"
    secret.write_text("root again\n")  # back to root's rights after the block


@pytest.mark.skipif(os.geteuid() != 0, reason="fsuid switching exists only on a root host")
def test_acting_as_changes_only_the_calling_thread(tmp_path: Path, secret: Path) -> None:
    inside, other = threading.Event(), threading.Event()
    result: list[str] = []

    def root_thread() -> None:
        inside.wait(10)
        result.append(secret.read_text())  # another thread keeps root's rights meanwhile
        other.set()

    thread = threading.Thread(target=root_thread)
    thread.start()
    with acting_as(AGENT):
        inside.set()
        other.wait(10)
    thread.join()
    assert result == ["root's own\n"]


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership hand-over needs root")
def test_chown_all_skips_links_and_hard_links(tree: Tree, secret: Path) -> None:
    (tree.path / "link").symlink_to(secret)
    (tree.path / "file").write_text("x")
    os.link(tree.path / "file", tree.path / "second-name")  # a file with two names may be a host file
    tree.chown_all(AGENT)
    assert secret.stat().st_uid == 0
    assert (tree.path / "file").stat().st_uid == 0
    assert os.lstat(tree.path / "link").st_uid == AGENT
