"""Defaults the command line shows in its help, kept in a module that imports nothing heavy."""

DEFAULT_RECIPE = "default"  # a benchmark variant list entry meaning the trainer's own settings
DEMO_EPOCHS = 20  # the demo's pretraining and fine-tuning epochs
DEMO_ITERS = 40  # the demo's iterations per epoch
# Bumped whenever a default of a trainer changes, so that the benchmark redoes runs made with the former default
# instead of reusing them under the same trainer name.
FINETUNE_RECIPE_VERSION = 2  # nnUNetTrainerSSPFinetune. 1: pretrained decoder kept; 2: encoder only
