"""Command-line entry points: ssgan-train, ssgan-predict, ssgan-sample and ssgan-report."""
