"""Where the cloud credentials come from and how they are kept current."""
