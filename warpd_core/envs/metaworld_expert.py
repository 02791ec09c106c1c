"""Metaworld demonstrations from the scripted expert policies that ship with metaworld.

``metaworld.policies.ENV_POLICY_MAP[<task>-v3]`` holds one hand-written policy per task
(``get_action(obs) -> (4,)``); they act on the 39-d observation of
:class:`~warpd_core.envs.metaworld_env.MetaworldEnv`, so the expert runs in exactly the
environment the learned policies are evaluated in.

Choices (ours):

* Episode ``k`` of a task is reset with env seed ``seed + k`` (evaluation uses seeds from
  100000 on, so demonstrations and test episodes never share a configuration).
* The expert's action is clipped to [-1, 1] and the clipped action is what is recorded (it
  is what the env executes; the experts' proportional terms ask for more at times).
* Recording stops ``tail`` steps after the first success (default 20) or at ``max_steps``.
  Success is counted at any step, so what a policy does long after succeeding does not
  matter, and hovering after the goal would otherwise fill most of every episode. Episodes
  are then at most ``max_steps`` long, so a VAE trained with ``horizon = max_steps`` sees
  every episode as exactly one snippet (shorter ones edge-padded, masked out of the loss:
  :meth:`~warpd_core.data.EpisodeDataset.gather_snippets`).
* Only successful episodes are kept; the expert's success rate per task is reported.

Output: Diffusion Policy's zarr layout (``data/state (N, 39)``, ``data/action (N, 4)``,
``meta/episode_ends (E,)``) plus ``meta/task_id (E,)`` (index in
:data:`~warpd_core.envs.metaworld_env.TASKS`), read back with
``load_dataset(path, task_key="task_id")`` (training configs: ``dataset.options.task_key:
task_id``). The task names and the expert statistics go into the root group's attributes
(``.zattrs``: ``task_names``, ``expert``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from warpd_core.envs.metaworld_env import DEFAULT_MAX_STEPS, TASKS, MetaworldEnv, env_name, parse_tasks, task_id

DEFAULT_TAIL = 20


def expert_policy(task: str):
    """metaworld's scripted policy for ``task`` (an object with ``get_action(obs)``)."""
    from metaworld.policies import ENV_POLICY_MAP  # noqa: PLC0415

    return ENV_POLICY_MAP[env_name(task)]()


def expert_action(policy, obs: np.ndarray) -> np.ndarray:
    """The expert's action for ``obs``, clipped to [-1, 1] (float32, (4,))."""
    with warnings.catch_warnings():  # metaworld warns whenever a proportional term exceeds 1
        warnings.simplefilter("ignore")
        a = policy.get_action(np.asarray(obs, dtype=np.float64))
    return np.clip(np.asarray(a, dtype=np.float32), -1.0, 1.0)


@dataclass
class ExpertEpisode:
    task: str
    seed: int
    states: np.ndarray  # (T, 39) float32, observation before each action
    actions: np.ndarray  # (T, 4) float32
    success: bool
    first_success: Optional[int]  # 1-based step of the first success


def run_expert_episode(env: MetaworldEnv, policy, seed: int, tail: int = DEFAULT_TAIL) -> ExpertEpisode:
    """Play one episode of the expert from reset ``seed``; stops ``tail`` steps after the
    first success or at ``env.max_steps``."""
    if tail < 0:
        raise ValueError(f"tail must be >= 0, got {tail}")
    obs = env.reset(seed)
    states, actions = [], []
    while True:
        a = expert_action(policy, obs)
        states.append(obs)
        actions.append(a)
        res = env.step(a)
        obs = res.obs
        if res.done or (env.first_success is not None and env.steps >= env.first_success + tail):
            break
    return ExpertEpisode(env.task, int(seed), np.stack(states), np.stack(actions), env.success, env.first_success)


@dataclass
class Demonstrations:
    states: np.ndarray  # (N, 39)
    actions: np.ndarray  # (N, 4)
    episode_ends: np.ndarray  # (E,)
    task_ids: np.ndarray  # (E,)
    stats: dict = field(default_factory=dict)  # task -> {played, kept, success_rate, mean_first_success, ...}


def generate_demonstrations(episodes_per_task: int, tasks: Optional[Sequence[str]] = None, seed: int = 0,
                            max_steps: int = DEFAULT_MAX_STEPS, tail: int = DEFAULT_TAIL,
                            progress: bool = True) -> Demonstrations:
    """Play ``episodes_per_task`` expert episodes per task (env seeds ``seed .. seed + n - 1``)
    and keep the successful ones. Raises ValueError when no episode at all succeeded."""
    if episodes_per_task <= 0:
        raise ValueError(f"episodes_per_task must be positive, got {episodes_per_task}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    names = parse_tasks(tasks)
    from tqdm.auto import tqdm  # noqa: PLC0415

    states, actions, ends, tids = [], [], [], []
    stats: dict[str, dict] = {}
    n = 0
    bar = tqdm(total=len(names) * episodes_per_task, desc="metaworld expert", unit="ep", disable=not progress)
    try:
        for task in names:
            env = MetaworldEnv(task, max_steps=max_steps)
            policy = expert_policy(task)
            t0 = time.perf_counter()
            firsts, lengths = [], []
            kept = 0
            for k in range(episodes_per_task):
                ep = run_expert_episode(env, policy, seed + k, tail)
                bar.update(1)
                if not ep.success:
                    continue
                kept += 1
                firsts.append(ep.first_success)
                lengths.append(len(ep.states))
                states.append(ep.states)
                actions.append(ep.actions)
                n += len(ep.states)
                ends.append(n)
                tids.append(task_id(task))
            env.close()
            stats[task] = {
                "task_id": task_id(task), "played": episodes_per_task, "kept": kept,
                "success_rate": kept / episodes_per_task,
                "mean_first_success_step": float(np.mean(firsts)) if firsts else None,
                "max_first_success_step": int(max(firsts)) if firsts else None,
                "mean_length": float(np.mean(lengths)) if lengths else None,
                "seconds": round(time.perf_counter() - t0, 2),
            }
            bar.set_postfix(task=task, success=f"{kept}/{episodes_per_task}")
    finally:
        bar.close()
    if not ends:
        raise ValueError(f"metaworld expert: no successful episode in {len(names)} x {episodes_per_task} "
                         f"(max_steps {max_steps} may be too short)")
    return Demonstrations(np.concatenate(states), np.concatenate(actions), np.asarray(ends, np.int64),
                          np.asarray(tids, np.int64), stats)


def write_demonstrations(path: str, demos: Demonstrations, overwrite: bool = False, info: Optional[dict] = None) -> str:
    """Write ``demos`` with :func:`warpd_core.data.zarr_store.write_zarr` (task ids in
    ``meta/task_id``); task names and expert statistics go into the root attributes."""
    import zarr  # noqa: PLC0415

    from warpd_core.data.zarr_store import write_zarr  # noqa: PLC0415

    out = write_zarr(path, demos.states, demos.actions, demos.episode_ends, task_ids=demos.task_ids,
                     overwrite=overwrite)
    root = zarr.open_group(str(out), mode="r+")
    root.attrs.update({"task_names": list(TASKS), "expert": demos.stats, **(info or {})})
    return str(out)
