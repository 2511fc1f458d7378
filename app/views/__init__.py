"""What the pages draw with: formatting, charts and panels. Display only; metrics come from data/ and engine/."""
