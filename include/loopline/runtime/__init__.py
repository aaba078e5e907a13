"""Local process supervision shared by the dev stack and, later, local consumer backends."""
