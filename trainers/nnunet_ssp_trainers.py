"""Re-exports the nnunet-ssp trainers for nnU-Net's lookup; pretraining trainers and variants resolve through
`__getattr__`."""

from nnunet_ssp.finetune import nnUNetTrainerSSPFinetune  # noqa: F401
from nnunet_ssp.variants import __getattr__  # noqa: F401
