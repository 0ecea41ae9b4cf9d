"""What a metallographer reads off a segmentation: the SEM data bar and its scale (calibration),
phase fractions with confidence intervals, particle statistics, and the report that shows them."""
