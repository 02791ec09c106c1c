"""A scripted PushT expert that plans pushes by look-ahead in gym-pusht's own physics.

Why this works: in gym-pusht the space damping is 0, so the block loses all velocity every
substep and moves only while the agent touches it, and contacts are frictionless. Pushing is
therefore quasi-static and a short simulation of one push from a restored physics state
predicts its outcome almost exactly (see ``PushTEnv.set_physics_state``).

The expert repeats one cycle:

1. **Plan.** Sample candidate pushes: random contact points on the 8 edges of the T, each
   with a pre-contact agent position ``P`` just outside the edge, a push direction (the
   inward normal turned by a random angle) and a random push length; plus, when the agent
   is next to the block, pushes that start from the agent's current state. Each candidate
   is simulated on a *second* env instance (agent teleported to ``P`` at rest, or the true
   current state), for the few control steps the push lasts. Its cost is the mean distance
   of the 8 T corners to their goal positions after the push (pixels), plus small costs for
   the approach path length and push duration. One candidate is drawn uniformly among the
   near-best (those achieving at least ``1 - choice_tolerance`` of the best improvement):
   this randomness makes demonstrations multimodal -- from one start state different RNG
   seeds push on different sides and take different paths.
2. **Approach.** Reach ``P`` without touching the block: a shortest path on a small
   visibility graph whose nodes sit off the T's convex corners (and in the two pockets under
   the cross bar), with segments checked against the T's two rectangles inflated by the
   agent radius plus a margin. The agent is kinematic and does not collide with the walls,
   so waypoints may lie anywhere in [0, 512]^2.
3. **Push.** Replay the simulated action sequence (a target moving along the push direction
   at ``push_speed`` px/step, then ``settle_steps`` steps holding), then plan again. A
   push is abandoned early when the block strays from its simulated path (an adversary
   moved it); the approach is abandoned when the block moves at all.

Measured (gym-pusht 0.1.8, env seeds 0..99, 300 steps): mean score 0.998, worst episode
0.968, success (coverage > 0.95) 84 %, mean episode length 189 steps, about 0.63 s of CPU
per episode. With the paper's adversary (p = 0.1, 40 px) on 20 episodes: mean score 0.74.
Approach waypoints are fed as targets at most ``approach_lead`` px ahead of the agent so
that actions stay near the agent, as in teleoperated demonstrations.

The expert reads the true physics state (agent velocity included) from the env it acts on:
it is a privileged demonstrator, not a policy on observations.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import time
from typing import Iterator

import numpy as np

from warpd_core.envs.pusht import (
    AGENT_RADIUS,
    WORKSPACE_SIZE,
    PhysicsState,
    PushTEnv,
    physics_step,
    tee_keypoints,
)

# The T as two axis-aligned boxes in its body frame: (xmin, xmax, ymin, ymax), pixels.
_BOXES = np.array([[-60.0, 60.0, 0.0, 30.0], [-15.0, 15.0, 30.0, 120.0]])

# The 8 edges of the T's outline in its body frame: (start, end, outward normal).
_EDGES = [
    ((-60.0, 0.0), (60.0, 0.0), (0.0, -1.0)),     # top of the cross bar
    ((-60.0, 0.0), (-60.0, 30.0), (-1.0, 0.0)),   # left end of the bar
    ((60.0, 0.0), (60.0, 30.0), (1.0, 0.0)),      # right end of the bar
    ((-60.0, 30.0), (-15.0, 30.0), (0.0, 1.0)),   # underside of the bar, left of the stem
    ((15.0, 30.0), (60.0, 30.0), (0.0, 1.0)),     # underside of the bar, right of the stem
    ((-15.0, 30.0), (-15.0, 120.0), (-1.0, 0.0)),  # left side of the stem
    ((15.0, 30.0), (15.0, 120.0), (1.0, 0.0)),    # right side of the stem
    ((-15.0, 120.0), (15.0, 120.0), (0.0, 1.0)),  # bottom of the stem
]
_EDGE_A = np.array([e[0] for e in _EDGES])  # (8, 2)
_EDGE_B = np.array([e[1] for e in _EDGES])  # (8, 2)
_EDGE_N = np.array([e[2] for e in _EDGES])  # (8, 2)


@dataclasses.dataclass
class ExpertConfig:
    """Knobs of the scripted expert (distances in pixels, durations in control steps)."""

    contacts_per_edge: int = 5
    """Random contact candidates sampled on each of the T's 8 edges per plan."""
    n_continue: int = 10
    """Candidates that push from the agent's current state (when it is next to the block)."""
    continue_radius: float = 25.0
    """The agent counts as next to the block within this distance of its surface (beyond the agent radius)."""
    direction_noise_deg: float = 30.0
    """Push direction = inward edge normal turned by an angle uniform in +-this."""
    min_push: float = 3.0
    max_push: float = 80.0
    """Push lengths are log-uniform in [min_push, clip(push_gain * error, min_push_cap, max_push)]."""
    push_gain: float = 1.5
    min_push_cap: float = 12.0
    push_speed: float = 12.0
    """Speed of the commanded target during a push, px per control step."""
    settle_steps: int = 2
    """Steps holding the final target at the end of a push (the PD agent lags ~2 steps)."""
    gap: float = 6.0
    """Clearance between the agent's disc and the block at the pre-contact position P."""
    node_margin: float = 14.0
    """Path nodes sit this far (plus the agent radius) off the T's corners."""
    check_margin: float = 2.0
    """Approach segments must keep the agent this far from the block."""
    switch_radius: float = 8.0
    """Move on to the next waypoint when this close to the current one."""
    arrive_radius: float = 3.0
    """Start the push when this close to P."""
    max_approach_steps: int = 40
    approach_lead: float = 50.0
    """During the approach the commanded target is at most this far from the agent (px), so
    demonstration actions stay near the agent as in human teleoperation; 0 disables."""
    travel_cost: float = 0.02
    """Cost per pixel of approach path, in pixels of corner error."""
    step_cost: float = 0.1
    """Cost per push step, in pixels of corner error."""
    replan_deviation: float = 5.0
    """Abandon a push when the block strays this far (mean corner distance, px) from its simulated path."""
    choice_tolerance: float = 0.2
    """Pick uniformly among candidates reaching >= (1 - tol) of the best error reduction."""

    def __post_init__(self) -> None:
        for name in ("contacts_per_edge", "push_speed", "min_push", "max_push", "gap", "arrive_radius",
                     "switch_radius", "max_approach_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ExpertConfig.{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.choice_tolerance <= 1.0:
            raise ValueError(f"ExpertConfig.choice_tolerance must be in [0, 1], got {self.choice_tolerance}")
        if self.min_push > self.max_push:
            raise ValueError(f"ExpertConfig.min_push ({self.min_push}) > max_push ({self.max_push})")


# ---------------------------------------------------------------------- geometry (numpy)
def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _to_body(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points (..., 2) -> T body frame for block pose [x, y, angle]."""
    return (np.asarray(points) - pose[:2]) @ _rot(pose[2])


def _to_world(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    return np.asarray(points) @ _rot(pose[2]).T + pose[:2]


def _segments_hit(p0: np.ndarray, p1: np.ndarray, inflate: float) -> np.ndarray:
    """Whether segments p0 -> p1 (M, 2), body frame, cross the T's boxes inflated by
    ``inflate`` (a conservative stand-in for the agent disc). Slab test. Returns (M,) bool."""
    p0 = np.atleast_2d(p0)
    d = np.atleast_2d(p1) - p0
    hit = np.zeros(len(p0), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for xmin, xmax, ymin, ymax in _BOXES:
            lo = np.array([xmin - inflate, ymin - inflate])
            hi = np.array([xmax + inflate, ymax + inflate])
            t1, t2 = (lo - p0) / d, (hi - p0) / d
            tmin = np.where(d == 0, np.where((p0 >= lo) & (p0 <= hi), -np.inf, np.inf), np.minimum(t1, t2))
            tmax = np.where(d == 0, np.where((p0 >= lo) & (p0 <= hi), np.inf, -np.inf), np.maximum(t1, t2))
            enter = np.maximum(tmin.max(axis=1), 0.0)
            leave = np.minimum(tmax.min(axis=1), 1.0)
            hit |= enter <= leave
    return hit


def _distance_to_tee(points: np.ndarray) -> np.ndarray:
    """Distance (M,) from body-frame points (M, 2) to the T (0 inside)."""
    points = np.atleast_2d(points)
    out = np.full(len(points), np.inf)
    for xmin, xmax, ymin, ymax in _BOXES:
        dx = np.maximum(np.maximum(xmin - points[:, 0], points[:, 0] - xmax), 0.0)
        dy = np.maximum(np.maximum(ymin - points[:, 1], points[:, 1] - ymax), 0.0)
        out = np.minimum(out, np.hypot(dx, dy))
    return out


def _nearest_on_tee(point: np.ndarray) -> np.ndarray:
    """Nearest point of the T (body frame) to a body-frame point (2,)."""
    best, best_d = None, np.inf
    for xmin, xmax, ymin, ymax in _BOXES:
        q = np.array([np.clip(point[0], xmin, xmax), np.clip(point[1], ymin, ymax)])
        d = float(np.hypot(*(point - q)))
        if d < best_d:
            best, best_d = q, d
    return best


def corner_error(pose: np.ndarray, goal: np.ndarray) -> float:
    """Mean distance (pixels) between the T's 8 corners at ``pose`` and at ``goal``
    (both [x, y, angle]); 0 exactly at the goal, insensitive to angle wrapping."""
    return float(np.linalg.norm(tee_keypoints(pose) - tee_keypoints(goal), axis=1).mean())


# ---------------------------------------------------------------------- the expert
@dataclasses.dataclass
class _Plan:
    waypoints: list  # approach waypoints, world px; empty: push from where the agent is
    pushes: np.ndarray  # (K, 2) action targets of the push
    block_pose: np.ndarray  # block pose when planned
    predicted_error: float
    predicted_poses: np.ndarray | None = None  # (K, 3) simulated block pose after each push step
    waypoint: int = 0
    approach_steps: int = 0
    push_step: int = 0


class PushTExpert:
    """Scripted PushT expert. Call ``reset()`` at the start of each episode, then
    ``act(env) -> action (2,) float64`` once per control step on the env being played.

    Args:
        config: planner knobs, see ``ExpertConfig``.
        seed: seed of the expert's random generator (contact sampling, tie breaking).
    """

    def __init__(self, config: ExpertConfig | None = None, seed: int | None = None):
        self.config = config or ExpertConfig()
        self.rng = np.random.default_rng(seed)
        self._sim = PushTEnv()  # second instance, for look-ahead only
        self._sim.reset(seed=0)
        self._plan: _Plan | None = None
        self.n_plans = 0
        self.n_simulated_steps = 0

    def reset(self, seed: int | None = None) -> None:
        """Forget the current plan; reseed the random generator when ``seed`` is given.

        The look-ahead env gets a fresh pymunk space too: the solver caches contact impulses
        between steps, and starting each episode from an empty cache makes an episode depend
        only on the env and expert seeds, not on what the process simulated before.
        """
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._sim.reset(seed=0)
        self._plan = None

    def close(self) -> None:
        self._sim.close()

    # -- acting --------------------------------------------------------------------------
    def act(self, env: PushTEnv) -> np.ndarray:
        """Action (target agent position, (2,) pixels) for the current state of ``env``."""
        cfg = self.config
        pose = env.block_pose
        agent = np.array(env.env.agent.position)
        for _ in range(3):  # a finished or invalid plan is replaced at once
            plan = self._plan
            if plan is None:
                plan = self._plan = self._make_plan(env)
            if plan.waypoint < len(plan.waypoints):
                # Approaching: the block must not have moved since planning.
                moved = np.abs(pose - plan.block_pose)
                if moved[0] > 1.0 or moved[1] > 1.0 or moved[2] > 0.02 \
                        or plan.approach_steps >= cfg.max_approach_steps:
                    self._plan = None
                    continue
                target = plan.waypoints[plan.waypoint]
                last = plan.waypoint == len(plan.waypoints) - 1
                dist = float(np.hypot(*(agent - target)))
                if dist < (cfg.arrive_radius if last else cfg.switch_radius):
                    plan.waypoint += 1
                    continue
                plan.approach_steps += 1
                if cfg.approach_lead > 0 and dist > cfg.approach_lead:
                    return agent + (target - agent) * (cfg.approach_lead / dist)
                return np.array(target, dtype=np.float64)
            if plan.push_step < len(plan.pushes):
                if plan.push_step == 0 and plan.waypoints:
                    # Arrived at P: replan if the block was touched on the way.
                    moved = np.abs(pose - plan.block_pose)
                    if moved[0] > 1.0 or moved[1] > 1.0 or moved[2] > 0.02:
                        self._plan = None
                        continue
                elif plan.push_step > 0 and plan.predicted_poses is not None and corner_error(
                        pose, plan.predicted_poses[plan.push_step - 1]) > cfg.replan_deviation:
                    # The block is not where the look-ahead put it (e.g. an adversary moved it).
                    self._plan = None
                    continue
                action = plan.pushes[plan.push_step]
                plan.push_step += 1
                return np.array(action, dtype=np.float64)
            self._plan = None
        # Could not find a usable plan three times in a row (rare): hold position.
        return agent

    # -- planning ------------------------------------------------------------------------
    def _make_plan(self, env: PushTEnv) -> _Plan:
        cfg, rng = self.config, self.rng
        self.n_plans += 1
        state = env.get_physics_state()
        pose = env.block_pose
        goal = env.goal_pose
        err0 = corner_error(pose, goal)
        agent = np.array(state.agent_position)
        agent_b = _to_body(agent, pose)
        r = AGENT_RADIUS
        max_len = float(np.clip(cfg.push_gain * err0, cfg.min_push_cap, cfg.max_push))

        def push_lengths(n: int) -> np.ndarray:
            lo, hi = math.log(cfg.min_push), math.log(max(max_len, cfg.min_push))
            return np.exp(rng.uniform(lo, hi, size=n))

        # (1) contact candidates on every edge: pre-contact P, direction, length (body frame).
        k = cfg.contacts_per_edge
        edge = np.repeat(np.arange(len(_EDGES)), k)
        t = rng.uniform(0.0, 1.0, size=edge.size)
        contact = _EDGE_A[edge] + t[:, None] * (_EDGE_B[edge] - _EDGE_A[edge])
        normal = _EDGE_N[edge]
        p_body = contact + normal * (r + cfg.gap)
        ok = _distance_to_tee(p_body) >= r + cfg.gap - 0.5  # pre-contact disc clear of the T
        noise = np.deg2rad(rng.uniform(-cfg.direction_noise_deg, cfg.direction_noise_deg, size=edge.size))
        c, s = np.cos(noise), np.sin(noise)
        inward = -normal
        dir_body = np.stack([c * inward[:, 0] - s * inward[:, 1], s * inward[:, 0] + c * inward[:, 1]], axis=1)
        p_body, dir_body = p_body[ok], dir_body[ok]
        p_world = _to_world(p_body, pose)
        dir_world = dir_body @ _rot(pose[2]).T
        in_ws = np.all((p_world >= 0.0) & (p_world <= WORKSPACE_SIZE), axis=1)
        p_world, p_body, dir_world = p_world[in_ws], p_body[in_ws], dir_world[in_ws]
        lengths = push_lengths(len(p_world))
        path_len, paths = self._approach_paths(agent, agent_b, p_world, p_body, pose)

        candidates = []  # (cost, waypoints, pushes, predicted error)
        for i in range(len(p_world)):
            if not np.isfinite(path_len[i]):
                continue
            pushes = self._push_targets(p_world[i], dir_world[i], cfg.gap + lengths[i])
            sim_state = dataclasses.replace(state, agent_position=tuple(p_world[i]), agent_velocity=(0.0, 0.0))
            err, poses = self._simulate(sim_state, pushes, goal)
            cost = err + cfg.travel_cost * path_len[i] + cfg.step_cost * len(pushes)
            candidates.append((cost, err, i, pushes, poses))

        # (2) pushes from the current state, towards random points of the T's outline.
        if _distance_to_tee(agent_b)[0] < r + cfg.continue_radius:
            n = cfg.n_continue
            edge_c = rng.integers(0, len(_EDGES), size=n)
            t_c = rng.uniform(0.0, 1.0, size=n)
            aim_b = _EDGE_A[edge_c] + t_c[:, None] * (_EDGE_B[edge_c] - _EDGE_A[edge_c])
            aim_w = _to_world(aim_b, pose)
            lengths_c = push_lengths(n)
            for j in range(n):
                d = aim_w[j] - agent
                norm = float(np.hypot(*d))
                if norm < 1e-6:
                    continue
                d /= norm
                # Only directions that reach the block without crossing far into it make sense.
                reach = max(norm - r, 0.0)
                pushes = self._push_targets(agent, d, reach + lengths_c[j])
                err, poses = self._simulate(state, pushes, goal)
                cost = err + cfg.step_cost * len(pushes)
                candidates.append((cost, err, -1, pushes, poses))

        if not candidates:  # nothing reachable: back off from the block and try again
            return _Plan(waypoints=[self._retreat_point(agent, agent_b, pose)], pushes=np.zeros((0, 2)),
                         block_pose=pose, predicted_error=err0)

        costs = np.array([cand[0] for cand in candidates])
        best = float(costs.min())
        improvement = err0 - best
        if improvement > 0:
            near = np.flatnonzero(costs <= best + cfg.choice_tolerance * improvement)
        else:
            near = np.flatnonzero(costs <= best + 1e-9)
        cost, err, i, pushes, poses = candidates[int(rng.choice(near))]
        waypoints = paths(i) if i >= 0 else []
        return _Plan(waypoints=waypoints, pushes=pushes, block_pose=pose, predicted_error=err,
                     predicted_poses=poses)

    def _push_targets(self, start: np.ndarray, direction: np.ndarray, distance: float) -> np.ndarray:
        """Action targets (K, 2): from ``start`` along ``direction`` by ``distance`` px at
        ``push_speed`` px/step, then ``settle_steps`` holding the end point."""
        cfg = self.config
        n_ramp = max(1, int(math.ceil(distance / cfg.push_speed)))
        frac = np.concatenate([np.arange(1, n_ramp + 1) / n_ramp, np.ones(cfg.settle_steps)])
        targets = start[None, :] + (distance * frac)[:, None] * direction[None, :]
        return np.clip(targets, 0.0, WORKSPACE_SIZE)

    def _simulate(self, state: PhysicsState, pushes: np.ndarray, goal: np.ndarray) -> tuple[float, np.ndarray]:
        """Replay ``pushes`` from ``state`` on the look-ahead env; returns the final corner
        error (px) and the block pose after each step ``(K, 3)``."""
        sim = self._sim
        sim.set_physics_state(state)
        poses = np.empty((len(pushes), 3))
        for k, target in enumerate(pushes):
            physics_step(sim.env, target)
            poses[k] = sim.block_pose
        self.n_simulated_steps += len(pushes)
        return corner_error(poses[-1], goal), poses

    def _retreat_point(self, agent: np.ndarray, agent_b: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """A point straight away from the nearest point of the T, clear of the check margin."""
        cfg = self.config
        near = _nearest_on_tee(agent_b)
        away = agent_b - near
        norm = float(np.hypot(*away))
        if norm < 1e-6:  # inside the T (should not happen): leave towards the body origin's far side
            away, norm = agent_b - np.array([0.0, 45.0]), max(float(np.hypot(*(agent_b - np.array([0.0, 45.0])))), 1e-6)
        target_b = near + away / norm * (AGENT_RADIUS + cfg.check_margin + 4.0)
        return np.clip(_to_world(target_b, pose), 0.0, WORKSPACE_SIZE)

    def _approach_paths(self, agent, agent_b, p_world, p_body, pose):
        """Shortest collision-free approach from the agent to each pre-contact point.

        Returns ``(lengths (M,), paths)``: path length in px (inf when unreachable) and a
        function ``paths(i) -> list of world waypoints`` ending at ``p_world[i]``.
        """
        cfg = self.config
        r = AGENT_RADIUS
        check = r + cfg.check_margin
        m = r + cfg.node_margin
        # Graph nodes, body frame: off the 6 convex corners and in the 2 pockets under the bar.
        nodes_b = np.array([
            [-60 - m, -m], [60 + m, -m], [-60 - m, 30 + m], [60 + m, 30 + m],
            [-15 - m, 120 + m], [15 + m, 120 + m], [-15 - m, 30 + m], [15 + m, 30 + m],
        ])
        nodes_w = _to_world(nodes_b, pose)
        keep = np.all((nodes_w >= 0.0) & (nodes_w <= WORKSPACE_SIZE), axis=1)
        nodes_b, nodes_w = nodes_b[keep], nodes_w[keep]
        n = len(nodes_b)

        # Start: the agent, or a retreat point first when it is inside the check margin.
        prefix = []
        start_b, start_w = agent_b, agent
        if _distance_to_tee(agent_b)[0] < check + 0.5:
            start_w = self._retreat_point(agent, agent_b, pose)
            start_b = _to_body(start_w, pose)
            prefix = [start_w]
        prefix_len = float(np.hypot(*(start_w - agent)))

        # Node-to-node distances and Floyd-Warshall (n <= 8).
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        seg = np.linalg.norm(nodes_b[ii] - nodes_b[jj], axis=-1)
        blocked = _segments_hit(nodes_b[ii].reshape(-1, 2), nodes_b[jj].reshape(-1, 2), check).reshape(n, n)
        dist = np.where(blocked, np.inf, seg)
        np.fill_diagonal(dist, 0.0)
        nxt = np.tile(np.arange(n), (n, 1))
        for k in range(n):
            via = dist[:, k:k + 1] + dist[k:k + 1, :]
            better = via < dist
            dist = np.where(better, via, dist)
            nxt = np.where(better, nxt[:, k:k + 1], nxt)

        # Start -> node, node -> P, start -> P (direct).
        d_sn = np.linalg.norm(nodes_b - start_b, axis=1)
        d_sn[_segments_hit(np.repeat(start_b[None], n, 0), nodes_b, check)] = np.inf
        M = len(p_body)
        d_direct = np.linalg.norm(p_body - start_b, axis=1)
        d_direct[_segments_hit(np.repeat(start_b[None], M, 0), p_body, check)] = np.inf
        if n:
            via_start = (d_sn[:, None] + dist).min(axis=0)  # (n,) best start -> node j
            first = (d_sn[:, None] + dist).argmin(axis=0)  # (n,) node i entered first
            d_np = np.linalg.norm(p_body[:, None, :] - nodes_b[None, :, :], axis=-1)  # (M, n)
            hits = _segments_hit(np.repeat(nodes_b[None], M, 0).reshape(-1, 2),
                                 np.repeat(p_body[:, None], n, 1).reshape(-1, 2), check).reshape(M, n)
            d_np[hits] = np.inf
            total_via = via_start[None, :] + d_np  # (M, n)
            last = total_via.argmin(axis=1)
            via_len = total_via[np.arange(M), last]
        else:
            via_len = np.full(M, np.inf)
            last = first = np.zeros(M, dtype=int)
        lengths = np.minimum(d_direct, via_len) + prefix_len

        def paths(i: int) -> list:
            if d_direct[i] <= via_len[i]:
                return prefix + [p_world[i]]
            j = int(last[i])
            a = int(first[j])
            chain = [a]
            while chain[-1] != j:
                chain.append(int(nxt[chain[-1], j]))
            return prefix + [nodes_w[c] for c in chain] + [p_world[i]]

        return lengths, paths


# ---------------------------------------------------------------------- rollouts & data
@dataclasses.dataclass
class ExpertEpisode:
    """One expert rollout. states (T, 5) float32 observations before each action,
    actions (T, 2) float32, coverages (T,) after each step, score = score_of(max coverage)."""

    states: np.ndarray
    actions: np.ndarray
    coverages: np.ndarray
    max_coverage: float
    score: float
    success: bool
    env_seed: int
    expert_seed: int
    cpu_s: float = 0.0  # CPU time the episode took (planning + simulation), seconds


def run_expert_episode(env: PushTEnv, expert: PushTExpert, env_seed: int, expert_seed: int,
                       max_steps: int = 300) -> ExpertEpisode:
    """Play one episode of at most ``max_steps`` steps; it ends early on success."""
    t0 = time.process_time()
    obs = env.reset(seed=env_seed)
    expert.reset(seed=expert_seed)
    states, actions, coverages = [], [], []
    for _ in range(max_steps):
        action = expert.act(env)
        states.append(obs)
        actions.append(np.clip(action, 0.0, WORKSPACE_SIZE).astype(np.float32))
        res = env.step(action)
        coverages.append(res.coverage)
        obs = res.obs
        if res.done or res.info["success"]:
            break
    return ExpertEpisode(
        states=np.asarray(states, dtype=np.float32), actions=np.asarray(actions, dtype=np.float32),
        coverages=np.asarray(coverages, dtype=np.float64), max_coverage=env.max_coverage,
        score=env.score, success=env.max_coverage > 0.95, env_seed=env_seed, expert_seed=expert_seed,
        cpu_s=time.process_time() - t0)


def _episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """Env seed and an independent expert seed for episode ``index`` of a run seeded ``seed``."""
    expert_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    return seed + index, expert_seed


_worker: dict = {}


def _worker_episode(job: tuple[int, int, int, dict | None]) -> ExpertEpisode:
    seed, index, max_steps, config = job
    if "env" not in _worker:
        _worker["env"] = PushTEnv(max_steps=max_steps)
        _worker["expert"] = PushTExpert(ExpertConfig(**config) if config else None)
    env_seed, expert_seed = _episode_seeds(seed, index)
    _worker["env"].max_steps = max_steps
    return run_expert_episode(_worker["env"], _worker["expert"], env_seed, expert_seed, max_steps)


def iter_expert_episodes(n_episodes: int, seed: int = 0, max_steps: int = 300, workers: int = 1,
                         config: ExpertConfig | None = None) -> Iterator[ExpertEpisode]:
    """Expert episodes in order; episode ``i`` starts from env seed ``seed + i``.
    ``workers > 1`` plays them in that many processes (results are identical)."""
    jobs = [(seed, i, max_steps, dataclasses.asdict(config) if config else None) for i in range(n_episodes)]
    if workers <= 1:
        for job in jobs:
            yield _worker_episode(job)
        return
    ctx = mp.get_context("spawn")  # pygame/pymunk state is not shared with forked children
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_worker_episode, jobs)


def generate_demonstrations(n_episodes: int, seed: int = 0, max_steps: int = 300, progress: bool = True,
                            min_score: float | None = None, workers: int = 1,
                            config: ExpertConfig | None = None):
    """Scripted PushT demonstrations in Diffusion Policy's flat layout.

    Args:
        n_episodes: episodes to play (env seeds ``seed .. seed + n_episodes - 1``).
        seed: base seed (env and expert seeds derive from it).
        max_steps: step limit per episode; episodes end early on success (coverage > 0.95).
        progress: show a tqdm bar.
        min_score: when set, keep only episodes with score >= min_score.
        workers: processes to play in (2 on a 2-core machine).

    Returns:
        ``(states (N, 5) float32, actions (N, 2) float32, episode_ends (E,) int64 exclusive
        cumulative ends, scores (E,) float64)`` over the kept episodes.
    """
    from tqdm import tqdm

    states, actions, ends, scores = [], [], [], []
    total = 0
    bar = tqdm(iter_expert_episodes(n_episodes, seed, max_steps, workers, config), total=n_episodes,
               disable=not progress, desc="pusht expert", unit="ep")
    kept_scores = []
    for ep in bar:
        if min_score is None or ep.score >= min_score:
            states.append(ep.states)
            actions.append(ep.actions)
            total += len(ep.states)
            ends.append(total)
            scores.append(ep.score)
        kept_scores.append(ep.score)
        bar.set_postfix(mean_score=f"{np.mean(kept_scores):.3f}", kept=len(scores))
    if not states:
        raise RuntimeError(f"no episode reached min_score={min_score} (best {max(kept_scores):.3f})")
    return (np.concatenate(states).astype(np.float32), np.concatenate(actions).astype(np.float32),
            np.asarray(ends, dtype=np.int64), np.asarray(scores, dtype=np.float64))


def evaluate_expert(n_episodes: int = 100, seed: int = 0, max_steps: int = 300, workers: int = 1,
                    progress: bool = True, config: ExpertConfig | None = None) -> dict:
    """Play ``n_episodes`` and summarise: mean score, success rate (max coverage > 0.95),
    mean episode length, wall time, CPU time summed over episodes (the cost on an idle
    machine is about cpu_time_s / workers), and per-episode scores/coverages."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    episodes = list(tqdm(iter_expert_episodes(n_episodes, seed, max_steps, workers, config),
                         total=n_episodes, disable=not progress, desc="pusht expert eval", unit="ep"))
    wall = time.perf_counter() - t0
    scores = np.array([e.score for e in episodes])
    return {
        "n_episodes": n_episodes,
        "seed": seed,
        "max_steps": max_steps,
        "mean_score": float(scores.mean()),
        "success_rate": float(np.mean([e.success for e in episodes])),
        "mean_max_coverage": float(np.mean([e.max_coverage for e in episodes])),
        "mean_episode_length": float(np.mean([len(e.actions) for e in episodes])),
        "wall_time_s": wall,
        "cpu_time_s": float(sum(e.cpu_s for e in episodes)),
        "workers": workers,
        "scores": scores.tolist(),
        "max_coverages": [e.max_coverage for e in episodes],
        "env_seeds": [e.env_seed for e in episodes],
    }


def record_expert_episode(path: str, seed: int = 0, index: int = 0, max_steps: int = 300,
                          config: ExpertConfig | None = None, fps: float = 10.0) -> str:
    """Replay episode ``index`` of a run seeded ``seed`` (the same episode that
    ``evaluate_expert``/``generate_demonstrations`` play) with rendering, and write it as
    ``.gif`` or ``.mp4`` with a per-frame caption (step, coverage) and the success frame
    marked. Returns ``path``."""
    from warpd_core.envs.render import FrameEvent, write_rollout_video

    env_seed, expert_seed = _episode_seeds(seed, index)
    env, expert = PushTEnv(max_steps=max_steps), PushTExpert(config)
    try:
        env.reset(seed=env_seed)
        expert.reset(seed=expert_seed)
        frames, captions, events = [env.render_frame()], [f"step 0  coverage {env.coverage:.2f}"], []
        for _ in range(max_steps):
            res = env.step(expert.act(env))
            frames.append(env.render_frame())
            captions.append(f"step {env.steps}  coverage {res.coverage:.2f}")
            if res.info["success"]:
                events.append(FrameEvent(len(frames) - 1, "success", f"success, score {env.score:.2f}"))
            if res.done:
                break
    finally:
        env.close()
        expert.close()
    return write_rollout_video(path, frames, events, captions, fps=fps)


__all__ = [
    "ExpertConfig", "PushTExpert", "ExpertEpisode", "corner_error", "run_expert_episode",
    "iter_expert_episodes", "generate_demonstrations", "evaluate_expert", "record_expert_episode",
]
