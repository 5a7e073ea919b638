"""Settings from outside the recipe: the environment and `.env` (with keys kept out of text), and the user's config file."""
