"""``pixray ui``: a local web page (Gradio) to make images and watch them form.

The form, the gallery and the run behind the page are plain Python (:mod:`.form`, :mod:`.gallery`,
:mod:`.session`), so they are tested without a browser; :mod:`.app` lays them out with Gradio, which
is imported only there (the optional ``ui`` extra: ``pip install pixray[ui]``).
"""
