"""fourdthinker: teach vision-language models to think with 4D imagery.

Importing the package does no work; every stage lives in its own subpackage
(world -> video -> data -> models/latent -> train -> infer -> eval). See README.md. The contracts
every stage shares sit at the root (``records``, ``qa``, ``labels``, ``stats``); no module imports
from a later stage (docs/architecture.md, tests/test_layers.py).
"""

__version__ = "0.1.0"
