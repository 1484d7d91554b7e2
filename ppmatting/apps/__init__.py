"""Applications built on the matting: background replacement (``background``), the comparison
picture (``compare``) and the interactive web app. The command-line tools and the web app share
this code, so each thing is done once."""
