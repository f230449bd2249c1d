"""The report rendered for people: the terminal, Markdown and HTML."""
