"""The live call model: v20 Call Control events in, legacy webhook events out."""
