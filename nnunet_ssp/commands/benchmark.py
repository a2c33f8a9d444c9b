"""`nnunet-ssp benchmark`: the label-efficiency grid through nnU-Net's own commands, and its report."""

import argparse
import sys
from pathlib import Path

from nnunet_ssp.benchmark.grid import CONFIGURATIONS
from nnunet_ssp.commands import add_command, add_dataset_argument, add_device_argument, add_plans_argument
from nnunet_ssp.commands.make_splits import add_split_arguments
from nnunet_ssp.defaults import DEFAULT_RECIPE
from nnunet_ssp.methods import method_names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the benchmark subcommand."""
    p = add_command(subparsers, "benchmark", _run, description=_DESCRIPTION,
                    help="pretrain, fine-tune and evaluate the label-efficiency grid against nnU-Net")
    add_dataset_argument(p)
    p.add_argument("--methods", nargs="*", choices=method_names(), default=method_names(),
                   help="SSP methods to pretrain and fine-tune (default: all; `--methods` alone: none, only "
                        "nnU-Net's baseline)")
    add_split_arguments(p)
    p.add_argument("--pretrain-epochs", type=int, default=None, metavar="E",
                   help="pretraining epochs (default: the pretraining trainer's own)")
    p.add_argument("--finetune-epochs", type=int, default=None, metavar="E",
                   help="epochs of fine-tuning and of the baseline (default: the trainers' own, 1000)")
    p.add_argument("--iters", type=int, default=None, metavar="I",
                   help="iterations per epoch of every training (default: the trainers' own, 250)")
    p.add_argument("--pretrain-variants", nargs="+", default=[DEFAULT_RECIPE], metavar="TOKENS",
                   help="pretraining recipes, each variant tokens joined by '_' (e.g. mask60_grid4) or 'default'; "
                        "every method is pretrained once per recipe; a recipe's own length (e.g. 100epochs) "
                        "replaces --pretrain-epochs (default: default)")
    p.add_argument("--finetune-variants", nargs="+", default=[DEFAULT_RECIPE], metavar="TOKENS",
                   help="fine-tuning recipes (e.g. default lr5e3_warmup5pct decoderTransfer), each run from every "
                        "pretraining and reported as <method>[.<pretraining variant>][+<fine-tuning variant>] "
                        "against the one baseline (default: default)")
    p.add_argument("-c", "--configuration", default=CONFIGURATIONS[0], choices=CONFIGURATIONS,
                   help="nnU-Net configuration every run trains, predicts and evaluates on (default 2d)")
    add_plans_argument(p, "plans identifier (default nnUNetPlans)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default $nnUNet_results/DatasetXXX/ssp_benchmark)")
    add_device_argument(p, "cuda", ["cuda", "cpu", "mps"],
                        "device for nnU-Net's training and prediction (default cuda, as nnU-Net)")
    p.add_argument("--seed-trainings", action="store_true",
                   help="seed Python, numpy and torch in every training with its split seed (pretraining: 0), so "
                        "that with nnUNet_n_proc_DA=0 a run repeats on the same machine (see "
                        "docs/guides/label_efficiency_benchmark.md); without it each training draws its seed; either way "
                        "runs/<run>/seeds.json records it")
    p.add_argument("--report-only", action="store_true",
                   help="only recompute report.md and its plots from --out/results.csv (and curves.csv and "
                        "slices.csv beside it)")


def _run(args: argparse.Namespace) -> int:
    from nnunet_ssp.benchmark import BenchmarkSettings, RunFailedError, report_from_csv, run_benchmark
    from nnunet_ssp.benchmark.runner import RESULTS_FILE, default_output_folder
    from nnunet_ssp.roots import dataset_name_of

    settings = BenchmarkSettings(
        args.dataset, tuple(dict.fromkeys(args.methods)), tuple(args.subjects), tuple(args.seeds),
        args.pretrain_epochs, args.finetune_epochs, args.iters, args.plans, args.out, args.device,
        args.val_subjects, args.subject_pattern, tuple(args.pretrain_variants), tuple(args.finetune_variants),
        args.seed_trainings, args.configuration)
    if args.report_only:
        out = args.out if args.out is not None else default_output_folder(dataset_name_of(args.dataset))
        report = report_from_csv(out / RESULTS_FILE)
        print(f"Report: {report.report_file}\nPlot:   {report.plot_file}")
        return 0
    try:
        print(run_benchmark(settings).summary())
    except RunFailedError as e:
        print(f"nnunet-ssp benchmark: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnunet-ssp benchmark: interrupted; the same command resumes, skipping finished runs.", file=sys.stderr)
        return 130
    return 0


_DESCRIPTION = (
    "Append the label-efficiency folds (as make-splits), pretrain each method once "
    "(nnUNetv2_train D C P -tr nnUNetTrainerSSP_<M>_<E>epochs_<I>iters on make-splits' pretraining "
    "fold P, which leaves out the validation subjects), then per number of "
    "labeled subjects and seed fine-tune from each method's checkpoint "
    "(nnUNetTrainerSSPFinetune_<E>epochs_<I>iters -pretrained_weights ...) and train nnU-Net's "
    "baseline on the same schedule (nnUNetTrainer_<E>epochs_<I>iters), predict "
    "$nnUNet_raw/DatasetXXX/imagesTs and evaluate against labelsTs with nnU-Net (3D Dice per "
    "structure and test case). Before it trains, and before a fine-tuning first uses a pretraining, it "
    "runs nnunet-ssp audit (the pool of the benchmark's configuration -c) and refuses to go on when a "
    "test or validation subject leaked. Finished runs are skipped, so an interrupted benchmark resumes; a "
    "second benchmark in an --out another one is working in is refused; "
    "delete runs/<run>/done.json to redo a run (a pretraining done again redoes the fine-tuning "
    "that started from it). Writes results.csv, slices.csv (2D Dice per slice of the test "
    "predictions with its base-to-apex position), report.md (mean ± sd, paired Wilcoxon tests over "
    "test cases and sign-flip tests over seeds against the baseline, Dice per slice in the base, mid "
    "and apex thirds), dice_vs_subjects.png and dice_per_slice.png into --out, and the seeds of "
    "each training into runs/<run>/seeds.json. Python: "
    "nnunet_ssp.benchmark.run_benchmark and report_from_csv.")
