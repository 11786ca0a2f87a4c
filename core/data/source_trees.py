"""Where documented source trees live on this machine: installed Python packages, Debian's Go, JavaScript, Ruby, PHP, Java.

The benchmark builder pools them (``python -m core build-benchmark --all-sources``) and the fine-tuning
recipes train on them (core/training/recipes.py): both read the list kept here.
"""
from __future__ import annotations

import glob
import site
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.workspace import Workspace


@dataclass(frozen=True)
class SourceTree:
    """A folder of source code in one language, found on this machine or not."""

    language: str
    pattern: str  # a path or glob; the first existing match is used
    origin: str  # where it comes from, for the user: "pip: numpy", "apt: golang-golang-x-text-dev"
    members: str = ""  # for a zip of sources (the JDK's src.zip): the prefix of the files unpacked, "" for all of them

    def locate(self) -> Path | None:
        matches = sorted(glob.glob(self.pattern))
        return Path(matches[0]) if matches else None


GO_STANDARD_LIBRARY = SourceTree("go", "/usr/share/go-[0-9]*.[0-9]*/src", "apt: golang-1.19-src (the Go standard library)")

# Folders (by name) of the Go SDKs setup.sh installs into /usr/share/gocode/src for the size of the --all-sources
# corpus, and of the libraries they pull in (gRPC, OpenCensus...): mostly generated code ("SetBucket sets the Bucket
# field's value."), over 88,000 of the pooled corpus's functions on this machine (2026-12-02). The fine-tuning
# recipe leaves them out, as it leaves out most of the JDK.
GENERATED_GO_SDK_FOLDERS = frozenset({"aws-sdk-go", "aws-sdk-go-v2", "smithy-go", "azure-sdk-for-go", "go-autorest",
                                      "google.golang.org", "cloud.google.com", "go.opencensus.io", "gophercloud", "govmomi"})

# Debian packages holding documented source in the other languages; setup.sh installs them (from the Debian mirror).
# Java is every module of the JDK's src.zip (openjdk-17-source): the java.* packages of java.base, all the code-v1
# recipe keeps (recipes.py says why), are a fifth of its documented methods; java.desktop, java.xml... hold the rest.
DEBIAN_TREES: tuple[SourceTree, ...] = (
    SourceTree("go", "/usr/share/gocode/src", "apt: golang-golang-x-text-dev, golang-github-spf13-cobra-dev, golang-github-sirupsen-logrus-dev, "
               "golang-github-aws-aws-sdk-go-dev, golang-github-azure-azure-sdk-for-go-dev, golang-google-api-dev, "
               "golang-google-cloud-dev, golang-golang-x-tools-dev, golang-github-snapcore-snapd-dev, "
               "golang-github-gophercloud-gophercloud-dev, golang-github-vmware-govmomi-dev, golang-github-cloudflare-circl-dev, "
               "golang-github-aws-aws-sdk-go-v2-dev"),
    GO_STANDARD_LIBRARY,
    SourceTree("javascript", "/usr/share/nodejs", "apt: node-lodash, node-commander"),
    SourceTree("ruby", "/usr/lib/ruby/[0-9]*.[0-9]*.[0-9]*", "apt: ruby (its standard library)"),
    SourceTree("ruby", "/usr/lib/ruby/vendor_ruby", "apt: ruby-rack, ruby-thor, ruby-activesupport, ruby-activerecord, ruby-sequel, ruby-rspec-core"),
    SourceTree("php", "/usr/share/php", "apt: php-symfony-console, php-guzzlehttp-psr7, php-symfony-http-kernel, php-phpseclib3"),
    SourceTree("java", "/usr/lib/jvm/java-17-openjdk-*/lib/src.zip", "apt: openjdk-17-source (every module)"),
)


def locate_tree(tree: SourceTree, workspace: Workspace) -> Path | None:
    """The folder of a tree found here, or None; a zip of sources (the JDK's) is unpacked once into ``<workspace>/cache/sources``."""
    path = tree.locate()
    if path is not None and path.suffix == ".zip":
        path = _unpacked_java(path, tree.members, workspace)
    return path if path is not None and path.is_dir() else None


def installed_package_folders() -> list[Path]:
    """The folders this interpreter installs packages into (its site-packages, and the user's when present).

    A folder inside another one listed is left out, so no file is read twice. Debian's own Python packages
    (/usr/lib/python3/dist-packages, for the system's python3) are not among them: they are installed for
    another interpreter, and most of their code is pip, pygments, setuptools, cryptography, yaml... at other
    versions. Pooled with this interpreter's packages on this machine (2026-12-01) they added 1,739
    functions but cancelled 1,297 of site-packages' (a function in both trees is dropped from both), a net
    441 of 109k, and the copies that differ by version would be near-twin answers to each other's queries.
    """
    candidates = [*site.getsitepackages(), site.getusersitepackages()]
    folders: list[Path] = []
    for candidate in candidates:
        path = Path(candidate).resolve()
        if path.is_dir() and path not in folders:
            folders.append(path)
    return [f for f in folders if not any(other != f and other in f.parents for other in folders)]


def machine_source_trees(workspace: Workspace) -> tuple[list[tuple[Path, str]], list[SourceTree]]:
    """(folder, origin) of every installed Python package folder and Debian tree found here, and the Debian trees missing."""
    found, missing = locate_trees(DEBIAN_TREES, workspace)
    return [(folder, "pip: every installed package") for folder in installed_package_folders()] + found, missing


def locate_trees(trees: Sequence[SourceTree], workspace: Workspace) -> tuple[list[tuple[Path, str]], list[SourceTree]]:
    """(folder, origin) of each tree found here, in order, and the trees missing."""
    found: list[tuple[Path, str]] = []
    missing: list[SourceTree] = []
    for tree in trees:
        path = locate_tree(tree, workspace)
        if path is None:
            missing.append(tree)
        else:
            found.append((path, tree.origin))
    return found, missing


def _unpacked_java(archive: Path, members: str, workspace: Workspace) -> Path | None:
    """The ``.java`` files of a JDK src.zip whose names start with ``members`` (all when ""), unpacked once.

    Each choice of members has its own folder, named after the JDK and the members, so the whole JDK
    and java.base alone never stand in for one another.
    """
    part = members.strip("/").replace("/", "-") or "all"
    target = workspace.root / "cache" / "sources" / f"jdk-{archive.resolve().parent.parent.name}-{part}"
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(archive) as zipped:
            chosen = [m for m in zipped.namelist() if m.startswith(members) and m.endswith(".java")]
            tmp = target.with_name(target.name + ".tmp")
            zipped.extractall(tmp, chosen)
        tmp.rename(target)
    except (OSError, zipfile.BadZipFile):
        return None
    return target
