"""Check a whole dataset as a config will read it, before a long run (``train.py --check_data``,
``vfdepth check-data``).

Every split the config uses is built exactly as training and evaluation build it (so the dataset index,
scene and calibration files are parsed, and every camera named in ``data.cameras`` is looked up), then
every file its samples need is checked once: each camera's image of each frame (context frames included),
the LIDAR file where the split needs ground-truth depth, the self-occlusion masks. By default a check is
quick (the file exists, the image header parses and ends with its end marker, the LIDAR file's index is
readable); ``decode=True`` reads everything as training would.

    report = check_data(cfg)
    print(report.summary())
    report.ok  # False when anything is missing or unreadable
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from vfdepth_core.datasets import build_dataset
from vfdepth_core.datasets.common import DatasetError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")  # what train.py and eval.py read


@dataclass
class FileProblem:
    split: str
    sample: int
    path: str
    message: str


@dataclass
class DataCheck:
    """What :func:`check_data` found: samples and files per split, problems with their paths."""

    samples: Dict[str, int] = field(default_factory=dict)
    files: Dict[str, int] = field(default_factory=dict)
    problems: List[FileProblem] = field(default_factory=list)
    split_errors: Dict[str, str] = field(default_factory=dict)  # a split that could not be built at all

    @property
    def ok(self) -> bool:
        return not self.problems and not self.split_errors

    def summary(self, max_listed: int = 20) -> str:
        """A readable report: per split samples and files, then the first problems with their paths."""
        lines = []
        for split in sorted(set(self.samples) | set(self.split_errors), key=lambda s: SPLITS.index(s)
                            if s in SPLITS else len(SPLITS)):
            if split in self.split_errors:
                lines.append(f"{split}: cannot be read: {self.split_errors[split]}")
            else:
                bad = sum(1 for p in self.problems if p.split == split)
                lines.append(f"{split}: {self.samples[split]} samples, {self.files[split]} files checked, "
                             f"{bad} problem(s)")
        unique = list({p.path: p for p in self.problems}.values())
        if unique:
            lines.append(f"{len(unique)} missing or unreadable file(s); the first {min(max_listed, len(unique))}:")
            lines += [f"  [{p.split}] {p.message}" for p in unique[:max_listed]]
        lines.append("OK: every file the config reads is there" if self.ok else "FAILED: fix the files above")
        return "\n".join(lines)


def check_data(cfg, splits: Sequence[str] = SPLITS, decode: bool = False, progress: bool = True) -> DataCheck:
    """Walk every sample of `splits` of ``cfg``'s dataset as training reads it; see the module docstring."""
    from tqdm import tqdm

    report = DataCheck()
    level = "decode" if decode else "header"
    for split in splits:
        try:
            ds = build_dataset(cfg, split)
            needed = list(ds.needed_files())
        except DatasetError as exc:
            report.split_errors[split] = str(exc)
            continue
        report.samples[split] = len(ds)
        seen: Dict[str, object] = {}
        for i, path, kind in tqdm(needed, desc=f"check {split}", unit="file", disable=not progress,
                                  mininterval=1.0):
            if path not in seen:
                seen[path] = ds.check_file(path, kind, level)
            if seen[path]:
                report.problems.append(FileProblem(split, i, path, str(seen[path])))
        report.files[split] = len(seen)
        if len(ds) == 0:
            report.split_errors[split] = f"no sample with frames {ds.frame_ids} (fix data.data_path or the split)"
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config_file", required=True, help="YAML config (training/configs/...)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key (repeatable), e.g. data.data_path=/data/ddad/ddad.json")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits to check (default: train val)")
    parser.add_argument("--decode", action="store_true", help="decode every image and LIDAR file (slower)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def run_check(cfg, splits: Sequence[str] = SPLITS, decode: bool = False, progress: bool = True) -> int:
    """Check, print the summary; 0 when all is there, 1 when anything is missing or unreadable."""
    report = check_data(cfg, splits, decode=decode, progress=progress)
    print(report.summary())
    return 0 if report.ok else 1


def main(args: argparse.Namespace) -> int:
    """`vfdepth check-data`: exit 0 = all there, 1 = files missing/unreadable, 2 = config mistake."""
    from vfdepth_core.config import load_config

    cfg = load_config(args.config_file, args.set)
    return run_check(cfg, args.splits, decode=args.decode, progress=not args.no_progress)
