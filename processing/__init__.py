"""The Processing provider and its algorithms: parameters in, one core call, outputs out."""
