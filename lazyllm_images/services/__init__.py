"""One module per service: CLI request -> (install plan, LaunchSpecs) -> launched, healthy containers."""
