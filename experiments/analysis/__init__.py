"""Study numbers as typed results, and the reports that render them."""
