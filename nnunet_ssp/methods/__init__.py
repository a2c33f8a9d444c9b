"""Self-supervised methods, one module each, and the registry of them (`nnunet_ssp.methods.registry`)."""

from nnunet_ssp.methods.registry import METHODS, Method, get_method, get_method_class, method_names, method_of_trainer

__all__ = ["METHODS", "Method", "get_method", "get_method_class", "method_names", "method_of_trainer"]
