"""The model card of a pretrained folder: what it is, what it was meta-trained on and how, the budget, how
the checkpoint was chosen and its scores, all read from the run's run.json and metrics.jsonl (nothing typed)."""

from __future__ import annotations

from metalearn.learners import Sizes
from metalearn.training.config import MetaTrainConfig


def _score_name(scores: dict) -> str:
    return "query accuracy" if scores.get("query_acc") is not None else "whole-episode online accuracy"


def _score_rows(split: str, per_task: dict) -> list[str]:
    return [f"| {split} | `{task}` | {s['score']:.4f} | {_score_name(s)} | {s['acc']:.4f} | {s['acc_last20']:.4f} |"
            for task, s in per_task.items()]


def _selection_line(block: dict) -> str:
    selection, generation = block["selection"], block["generation"]
    if block["checkpoint"] != "best" or selection is None:
        return (f"the run's latest checkpoint (generation {generation}), exported without `--best`: not chosen "
                f"on any score.")
    if selection["selected_by"] == "validation":
        return (f"`best/`: generation {generation}, the evaluation with the highest `val_score` "
                f"({selection['val_score']:.4f}), selected by validation, never by meta-test scores.")
    return f"`best/`: generation {generation}, chosen on meta-test accuracy (a run made before validation existed)."


def model_card(name: str, dest: str, info: dict, sizes: Sizes) -> str:
    """README.md for the pretrained folder `dest` from its run.json contents `info`."""
    block, config = info["pretrained"], MetaTrainConfig.from_json(info["config"])
    spec, budget, record = info["task_spec"], block["budget"], block["evaluation"]
    outer = ", ".join(f"{k} {v}" for k, v in info["config"]["outer"].items() if k != "name")
    validation = (f"`{' '.join(config.val_tasks)}` (given with --val-tasks)" if config.val_tasks else
                  f"the meta-training specs on a fixed 10% validation slice of each class of their train split, "
                  f"never sampled in meta-training")
    env = info.get("environment") or {}
    lines = [
        f"# {name}: a meta-trained `{config.learner}` learning algorithm",
        "",
        f"Meta-trained on `{' '.join(config.train_tasks)}`; exported from generation {block['generation']} of "
        f"`{block['source']}` with `python launch/inspect_checkpoint.py {block['source']} --export-pretrained {dest}"
        f"{' --best' if block['checkpoint'] == 'best' else ''}`.",
        "",
        "```bash",
        f"python launch/meta_test.py --run {dest}          # on the run's meta-test tasks, beside the baselines",
        f"python launch/ordered_mnist.py --learners --run {dest} --out runs/ordered_{name}   # the OrderedMNIST stream",
        "```",
        "",
        f"In Python: `from metalearn import load_run; run = load_run(\"{dest}\")` gives `run.learner` and "
        f"`run.meta_params`.",
        "",
        "## What it is",
        "",
        f"- learner `{config.learner}`: {sizes.algorithm:,} meta-parameters (the algorithm, `meta_params.npz`), "
        f"{sizes.state:,} learnable-state floats per task on {spec['input_size']} inputs x {spec['num_classes']} "
        f"classes",
        f"- inner loop: episodes of {config.episode_length} steps, inner batch {config.inner_batch}",
        "",
        "## Meta-training",
        "",
        f"- data: meta-training tasks `{' '.join(config.train_tasks)}` (their train splits); validation tasks: "
        f"{validation}; meta-test tasks `{' '.join(config.test_tasks)}` (their test splits)",
        f"- command: `{info['command']}`" if info.get("command") else
        "- command: not recorded (the run was not started by `launch/meta_train.py`, e.g. by a sweep or from "
        "Python); the config in `run.json` is the whole setting",
        f"- outer optimizer `{info['config']['outer']['name']}`: {outer}; Adam lr {config.lr}; "
        f"{config.episodes_per_member} episode(s) per member and task; seed {config.seed}",
        f"- budget: {block['generation']} generations to this checkpoint, {budget['seconds'] / 60:.1f} min of "
        f"generation time (the metrics' `seconds`; compilation and evaluations excluded); the run went on to "
        f"generation {budget['run_generations']} ({budget['run_seconds'] / 60:.1f} min); "
        f"{info.get('mesh_devices', '?')} {env.get('platform', '?')} device(s) ({env.get('device_kind', '?')}), "
        f"python {env.get('python', '?')}, jax {(env.get('packages') or {}).get('jax', '?')}",
        "",
        "## Selection",
        "",
        f"The checkpoint is {_selection_line(block)}",
        "",
    ]
    if record is None:
        return "\n".join(lines + [f"## Scores\n\nGeneration {block['generation']} was not evaluated during "
                                  f"meta-training; `python launch/meta_test.py --run {dest}` scores it.\n"])
    lines += [
        f"## Scores at generation {block['generation']} (from `metrics.jsonl`)",
        "",
        f"{config.eval_episodes} episodes of {config.episode_length} steps per task, the same for every "
        f"evaluation of the run. `score` is the headline figure: query accuracy on streams, whole-episode "
        f"online accuracy otherwise. val_score {record['val_score']:.4f}, mean meta-test score "
        f"{record['test_score']:.4f}.",
        "",
        "| split | task | score | score is | acc | last 20% |",
        "|---|---|---|---|---|---|",
        *_score_rows("validation", record["validation"]),
        *_score_rows("test", record["tests"]),
        "",
    ]
    return "\n".join(lines)
