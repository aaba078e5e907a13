"""Champion/challenger promotion: the gates and the flow that applies them."""
