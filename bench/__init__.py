"""``make bench``: what the component layer costs, under mocks and with the real CLI (see the README's Performance section)."""
