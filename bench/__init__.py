"""``make bench``: what the component layer costs, under mocks and with the real CLI.

See the README's Performance section.
"""
