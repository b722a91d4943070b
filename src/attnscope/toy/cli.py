"""``attnscope toy train|check``: train the shipped toy model; check what it generates."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import AttnscopeError

app = typer.Typer(no_args_is_help=True, help="The toy world: train and check the toy Wan model.")


@app.command("train")
def train_command(
    out: Path = typer.Option(Path("toy-train"), help="Folder for the trained pipeline and train_state.json."),
    seed: int = typer.Option(0, help="Training seed (world seeds drawn stay below 10^9)."),
    resume: Path = typer.Option(None, help="Continue from a folder written by this command (default: OUT "
                                           "itself when it holds train_state.json)."),
    device: str = typer.Option(None, help="cuda or cpu (default: cuda when available)."),
    vae_steps: int = typer.Option(3000, help="VAE steps."),
    vae_seconds: float = typer.Option(0.0, help="VAE time budget in seconds (0: none)."),
    vae_batch: int = typer.Option(8, help="VAE batch (clips of --vae-frames frames)."),
    vae_frames: int = typer.Option(9, help="Frames per VAE training clip (4k+1)."),
    vae_crop: int = typer.Option(256, help="Side of the random square crops the VAE trains on (px, /8)."),
    vae_decoder_only: bool = typer.Option(False, help="Train only the VAE decoder (keeps the latent space, so "
                                                      "a trained transformer stays valid)."),
    vae_report: int = typer.Option(24, help="Scenes whose per-colour reconstruction error is logged after the "
                                   "VAE stage (0: none; minutes on a CPU)."),
    pool: int = typer.Option(40_000, help="Training videos encoded once into latents for the denoiser."),
    pool_seconds: float = typer.Option(0.0, help="Stop encoding the pool after this many seconds (0: none)."),
    dit_steps: int = typer.Option(20_000, help="Transformer + text encoder steps."),
    dit_seconds: float = typer.Option(0.0, help="Transformer time budget in seconds (0: none)."),
    dit_batch: int = typer.Option(256, help="Transformer batch."),
    dit_lr: float = typer.Option(5e-4, help="Peak learning rate of the transformer and text encoder."),
    workers: int = typer.Option(1, help="Processes that sample the pool's scenes."),
    warmup: int = typer.Option(200, help="Warm-up steps of the transformer's learning rate."),
    log_every: int = typer.Option(50, help="Log (and record) the mean loss every N steps."),
) -> None:
    """Train the toy Wan: VAE, then transformer + text encoder with flow matching and caption dropout.

    Step and second budgets are totals over runs: resuming with larger ones continues a stage.

    Example: attnscope toy train --out toy-train --vae-seconds 120 --dit-seconds 300
    """
    from .train import TrainConfig, train

    if (vae_frames - 1) % 4:
        raise AttnscopeError(f"--vae-frames {vae_frames} must be 4k+1 (5, 9, 13, 17) for Wan's causal VAE")
    cfg = TrainConfig(out=out, seed=seed, device=device, resume=resume, vae_steps=vae_steps,
                      vae_seconds=vae_seconds, vae_batch=vae_batch, vae_frames=vae_frames, vae_crop=vae_crop,
                      vae_decoder_only=vae_decoder_only, vae_report=vae_report, pool=pool,
                      pool_seconds=pool_seconds, dit_steps=dit_steps, dit_seconds=dit_seconds, dit_batch=dit_batch,
                      dit_lr=dit_lr, warmup=warmup, workers=workers, log_every=log_every)
    typer.echo(f"trained pipeline: {train(cfg)}")


@app.command("check")
def check_command(
    prompts: int = typer.Option(50, help="Prompts sampled from the grammar (odd ones with two objects)."),
    seed: int = typer.Option(0, help="Which held-out prompts: world seeds 10^9 + seed·10^5 + i."),
    model: str = typer.Option("toy", help="'toy' (the shipped weights) or a local diffusers folder."),
    steps: int = typer.Option(None, help="Denoising steps (default: the toy default)."),
    guidance: float = typer.Option(None, help="CFG scale (default: the toy default)."),
    shift: float = typer.Option(None, help="Sampling flow shift (default: the scheduler's, 3.0 for the toy)."),
    device: str = typer.Option(None, help="cuda or cpu (default: cuda when available)."),
    sheet: Path = typer.Option(None, help="Save a PNG contact sheet (frames 0, 4, 8, 12, 16) of the first prompts."),
    json_out: Path = typer.Option(None, "--json", help="Write totals and per-prompt results as JSON."),
    quiet: bool = typer.Option(False, help="Print the totals only."),
) -> None:
    """Generate held-out prompts and read the videos back with the project's detector.

    Example: attnscope toy check --prompts 50 --seed 0
    """
    from .check import format_report, format_result, run_check
    from .model import load_toy_pipeline

    pipe = load_toy_pipeline(model, device)
    report = run_check(pipe, prompts, seed, steps, guidance, sheet,
                       on_result=None if quiet else lambda r: typer.echo(format_result(r)), shift=shift)
    typer.echo(format_report(report, per_prompt=False))
    if json_out is not None:
        json_out.write_text(json.dumps({"totals": report.totals(), "results": [
            {"prompt": r.prompt, "seed": r.seed, "objects": r.objects, "unrequested": r.unrequested}
            for r in report.results]}, indent=1))


if __name__ == "__main__":
    app()
