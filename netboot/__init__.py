"""netboot: bare-metal provisioning appliance."""
