"""EG3D networks as plain nn.Modules with the official parameter names."""
