"""Volume rendering of tri-planes: rays, plane sampling, importance sampling, compositing."""
