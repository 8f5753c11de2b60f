"""The studio: ``stylelab serve``, a local web app to run, watch, keep and compare style transfers.

``app.create_app`` builds the FastAPI app (routes), ``jobs`` holds the queue and
its worker thread, ``uploads`` the checked input images, ``gallery`` the run
folders read back, ``security`` tokens, body limits and path confinement,
``limits`` the bounds on what a job may ask for, and ``server`` starts uvicorn.
The page itself is plain HTML, CSS and JavaScript in ``static/``, served
locally (no build step, no CDN).
"""
