"""`nnunet-ssp trainer-path` and `nnunet-ssp env`."""

import argparse

from nnunet_ssp.commands import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the trainer-path and env subcommands."""
    add_command(
        subparsers, "trainer-path", _run_trainer_path, help="print the folder to export as nnUNet_extTrainer",
        description='Print the folder that makes the nnunet-ssp trainers visible to nnUNetv2_train and '
                    'nnUNetv2_predict: export nnUNet_extTrainer="$(nnunet-ssp trainer-path)".')
    add_command(
        subparsers, "env", _run_env, help="print the shell exports nnU-Net and nnunet-ssp need",
        description="Print export lines for nnUNet_raw, nnUNet_preprocessed, nnUNet_results (current values, or "
                    "a suggestion when unset) and nnUNet_extTrainer. Use: eval \"$(nnunet-ssp env)\".")


def _run_trainer_path(args: argparse.Namespace) -> None:
    from nnunet_ssp.environment import trainer_path
    print(trainer_path())


def _run_env(args: argparse.Namespace) -> None:
    import shlex

    from nnunet_ssp.environment import environment_exports
    for name, value in environment_exports().items():
        print(f"export {name}={value if value.startswith('$HOME/') else shlex.quote(value)}")
