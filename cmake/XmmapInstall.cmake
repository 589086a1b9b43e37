# Install rules and package files (filled in by the packaging work).
