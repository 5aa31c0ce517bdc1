"""Training the genre models: zoo (models) → results (types) → artefacts (files) → pipeline (the run)."""
