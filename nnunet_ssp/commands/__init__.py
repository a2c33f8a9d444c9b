"""Subcommands of the `nnunet-ssp` CLI, one module each; heavy imports happen inside the runners."""
