"""``python -m sciml`` (also what ``torchrun -m sciml train`` runs)."""

from sciml.cli import main

raise SystemExit(main())
