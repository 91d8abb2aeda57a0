"""Customer passwords: hashing (argon2id), legacy hashes from other systems, and the policy."""
