Feature: Users
  People sign up through the gateway. Each new user is stored once, whatever the case of their
  email address, and announced in the Slack channel #user as "User <email> created", where
  <email> stands for the new user's email address.

  Background:
    Given I am signed in as "alice"

  Scenario: A new user is announced in #user
    When I create a user named "Ada Lovelace" with a new email address
    Then the answer is 201
    And the answer is the new user, with an id
    And the answer's Location leads to the new user
    And "User <email> created" soon appears in the channel "#user"

  Scenario: A user with invalid details is refused, naming each wrong field
    When I create a user named "" with the email address "not-an-email"
    Then the answer is 400
    And the answer is a problem of type "urn:problem:validation"
    And the problem names the field "name"
    And the problem names the field "email"

  Scenario: A second user with the same email address, in any case, is refused
    Given a user named "Grace Hopper" exists with a new email address
    When I create a user named "Grace H." with the same email address in capitals
    Then the answer is 409
    And the answer is a problem of type "urn:problem:conflict"

  Scenario: A user created in the background appears shortly after
    When I ask for a user named "Alan Turing" with a new email address to be created in the background
    Then the answer is 202
    And the answer's Location is where the new user will be listed
    And following the Location soon lists the new user
