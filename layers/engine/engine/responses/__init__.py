"""The Responses logic: create, the turn loop, input conversion, stored-response operations, background runs."""
