"""Speed mode: one technique per module (each with its setting and an `apply`/builder); `mode` composes them."""
