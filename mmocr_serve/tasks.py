"""What an archive serves: a text detector, a text recognizer, or both (end-to-end OCR)."""

DET, RECOG, OCR = "det", "recog", "ocr"
TASKS = (DET, RECOG, OCR)
