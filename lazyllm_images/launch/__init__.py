"""Launch planning: LaunchSpec (spec), one GPU model for every target (gpu), and the renderers (docker, compose,
k8s). Pure: nothing here talks to the engine."""
