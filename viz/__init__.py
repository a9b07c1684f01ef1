"""The viewer application: render arguments, the render worker, and one widget per file."""
