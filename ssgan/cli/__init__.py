"""Command-line entry points: ssgan-train, ssgan-predict, ssgan-sample, ssgan-evaluate and ssgan-report."""
