"""``warpd data ...``: inspect and convert demonstration files.

    warpd data inspect PATH [--format F] [--state-key K] [--action-key K] [--obs-keys a,b] [--filter-key K]
    warpd data convert SRC DST [--overwrite] [--obs-key state] [--env-args JSON] [reader options]
    warpd data from-bag BAG [BAG ...] --params robot.yaml [--rate HZ] --out demos.zarr [--split bag|gap|marker]

PATH / SRC may also be a LeRobotDataset folder (``meta/info.json`` + parquet; ``--state-key
observation.state --action-key action`` by default for that format).

``register(subparsers)`` adds the ``data`` command to the top-level CLI; every leaf sets
``func(args) -> int`` (exit status).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from warpd_core.cli_args import add_progress_flag
from warpd_core.data.episodes import DatasetError, EpisodeDataset
from warpd_core.data.io import FORMATS, HDF5_SUFFIXES, dataset_rate_hz, detect_format, load_dataset
from warpd_core.data.robomimic import episodes_from_dataset, write_robomimic
from warpd_core.data.zarr_store import write_zarr


def _add_reader_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detect)")
    p.add_argument("--state-key", default=None,
                   help="zarr: array under data/ used as state (default: state); lerobot: column (default: observation.state)")
    p.add_argument("--action-key", default=None, help="zarr: array under data/ / lerobot: column used as action (default: action)")
    p.add_argument("--obs-keys", default=None,
                   help="hdf5: comma-separated obs keys concatenated into the state (default: all low-dim keys, sorted)")
    p.add_argument("--filter-key", default=None, help="hdf5: read only demos listed in mask/<key>")
    p.add_argument("--task-key", default=None, help="task id key (zarr: meta/<key>; hdf5: demo attribute)")


def _load(path: str, args: argparse.Namespace) -> tuple[EpisodeDataset, str]:
    fmt = detect_format(path) if args.format == "auto" else args.format
    if fmt == "zarr":
        kw = dict(state_key=args.state_key or "state", action_key=args.action_key or "action", task_key=args.task_key)
    elif fmt == "lerobot":
        kw = dict(state_key=args.state_key or "observation.state", action_key=args.action_key or "action")
    else:
        keys = None if args.obs_keys is None else [k for k in args.obs_keys.split(",") if k]
        kw = dict(obs_keys=keys, task_key=args.task_key, filter_key=args.filter_key)
    return load_dataset(path, format=fmt, **kw), fmt


def _stats_table(name: str, x: np.ndarray) -> list[str]:
    lines = [f"{name} ({x.shape[1]} dims):", f"  {'dim':>4} {'min':>12} {'max':>12} {'mean':>12} {'std':>12}"]
    x64 = x.astype(np.float64)
    for d, (lo, hi, mu, sd) in enumerate(zip(x64.min(0), x64.max(0), x64.mean(0), x64.std(0))):
        lines.append(f"  {d:>4} {lo:>12.5g} {hi:>12.5g} {mu:>12.5g} {sd:>12.5g}")
    return lines


def describe(ds: EpisodeDataset, fmt: str, rate_hz: float | None = None) -> str:
    """The text ``warpd data inspect`` prints."""
    lengths = np.diff(np.concatenate([[0], ds.episode_ends]))
    lines = [
        f"file: {ds.source}",
        f"format: {fmt}",
        f"episodes: {ds.n_episodes}",
        f"steps: {ds.n_steps}",
        f"state dim: {ds.state_dim}",
        f"action dim: {ds.action_dim}",
        f"episode length: min {lengths.min()}, max {lengths.max()}, mean {lengths.mean():.1f}, "
        f"median {np.median(lengths):g}",
    ]
    if rate_hz:
        lines.append(f"control rate: {rate_hz:g} Hz (episode duration: mean {lengths.mean() / rate_hz:.2f} s)")
    if ds.task_ids is not None:
        ids, counts = np.unique(ds.task_ids, return_counts=True)
        lines.append("tasks: " + ", ".join(f"{i} ({c} episodes)" for i, c in zip(ids, counts)))
    lines += _stats_table("state", ds.states)
    lines += _stats_table("action", ds.actions)
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    try:
        ds, fmt = _load(args.path, args)
        rate = dataset_rate_hz(args.path, fmt)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe(ds, fmt, rate))
    return 0


def _output_format(dst: str) -> str:
    suffix = Path(dst).suffix.lower()
    if suffix == ".zarr":
        return "zarr"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    raise ValueError(f"{dst}: cannot tell the output format from the extension (use .zarr, .hdf5 or .h5)")


def _convert(args: argparse.Namespace) -> int:
    try:
        out_fmt = _output_format(args.dst)
        env_args = json.loads(args.env_args)
        if not isinstance(env_args, dict):
            raise ValueError("--env-args must be a JSON object")
        ds, in_fmt = _load(args.src, args)
        rate = dataset_rate_hz(args.src, in_fmt)
        if out_fmt == "zarr":
            write_zarr(args.dst, ds.states, ds.actions, ds.episode_ends, task_ids=ds.task_ids, overwrite=args.overwrite,
                       attrs={"control_rate_hz": rate, "converted_from": str(args.src)} if rate else None)
        else:
            write_robomimic(args.dst, episodes_from_dataset(ds, obs_key=args.obs_key), env_args,
                            overwrite=args.overwrite)
    except (DatasetError, ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} ({out_fmt}): {ds.n_episodes} episodes, {ds.n_steps} steps, "
          f"state {ds.state_dim}, action {ds.action_dim} (from {in_fmt})")
    return 0


def _from_bag(args: argparse.Namespace) -> int:
    # The observation is built by the controller's own adapters (warpd_ros.adapters, numpy
    # only; no rclpy is imported): this command is where warpd_core meets the params file.
    try:
        import rosbags.rosbag2  # noqa: F401 - the bag reader (pure Python, no ROS install)

        from warpd_ros.bag import BagError, episodes_from_bags, robot_io
    except ImportError as exc:
        print(f"error: from-bag needs the rosbags package and warpd_ros on the path ({exc})", file=sys.stderr)
        return 2
    try:
        if Path(args.out).exists() and not args.overwrite:
            raise FileExistsError(f"{args.out}: already exists (pass --overwrite to replace it)")
        io = robot_io(args.params)
        rate = args.rate if args.rate is not None else 1.0 / io.control_period
        conv = episodes_from_bags(args.bags, io, rate, split=args.split, gap_s=args.gap, marker_topic=args.marker_topic,
                                  action_max_age=args.action_max_age, min_steps=args.min_steps,
                                  progress=not args.no_progress)
        ds = conv.dataset
        attrs = {"control_rate_hz": float(rate), "params_file": str(args.params), "bags": [str(b) for b in args.bags],
                 "observation": io.names, "trigger_topic": io.trigger.topic, "command_topic": io.output.topic,
                 "command_type": io.output.type}
        write_zarr(args.out, ds.states, ds.actions, ds.episode_ends, overwrite=args.overwrite, attrs=attrs)
    except (BagError, DatasetError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in conv.report:
        print(line)
    print(f"wrote {args.out} (zarr): {ds.n_episodes} episodes, {ds.n_steps} steps at {rate:g} Hz, "
          f"state {ds.state_dim}, action {ds.action_dim} (from {len(args.bags)} bag(s))")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data inspect`` and ``data convert`` to a top-level CLI's subparsers."""
    data = subparsers.add_parser("data", help="inspect and convert demonstration files (zarr / robomimic hdf5 / LeRobot / rosbag2)")
    sub = data.add_subparsers(dest="data_command", metavar="{inspect,convert,from-bag}")
    sub.required = True

    p = sub.add_parser("inspect", help="print episodes, steps, dims and per-dim statistics")
    p.add_argument("path", help="a .zarr store or a robomimic .hdf5 file")
    _add_reader_options(p)
    p.set_defaults(func=_inspect)

    p = sub.add_parser("convert", help="convert between Diffusion Policy zarr and robomimic hdf5 "
                                       "(state, action, task ids; other arrays are not carried)")
    p.add_argument("src", help="input .zarr store or .hdf5 file")
    p.add_argument("dst", help="output path; .zarr -> zarr, .hdf5/.h5 -> robomimic hdf5")
    _add_reader_options(p)
    p.add_argument("--obs-key", default="state", help="hdf5 output: obs key holding the state (default: state)")
    p.add_argument("--env-args", default='{"env_name": "unknown", "type": null, "env_kwargs": {}}',
                   help="hdf5 output: JSON stored in data.attrs['env_args']")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.set_defaults(func=_convert)

    p = sub.add_parser("from-bag", help="rosbag2 recordings (MCAP / SQLite3) -> zarr, through the controller's own "
                                        "input adapters and params file")
    p.add_argument("bags", nargs="+", help="rosbag2 directories (or bare .mcap / .db3 files)")
    p.add_argument("--params", required=True, help="the params file the controller runs with (warpd_controller section)")
    p.add_argument("--rate", type=float, default=None, help="control rate in Hz to resample at (default: 1 / control_period)")
    p.add_argument("--out", required=True, help="output .zarr store")
    p.add_argument("--split", choices=["bag", "gap", "marker"], default="bag",
                   help="episodes: one per bag (default), split where the trigger input pauses > --gap s, or "
                        "delimited by --marker-topic messages (std_msgs/Bool: true starts, false ends)")
    p.add_argument("--gap", type=float, default=1.0, help="--split gap: seconds (default 1.0)")
    p.add_argument("--marker-topic", default=None, help="--split marker: the topic")
    p.add_argument("--action-max-age", type=float, default=None,
                   help="seconds a command stays the action (default: 2 control periods at --rate)")
    p.add_argument("--min-steps", type=int, default=2, help="drop stretches shorter than this many ticks (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_progress_flag(p)
    p.set_defaults(func=_from_bag)
    return data
